"""Momentum's configuration language: parse, validate, resolve effective values."""

from __future__ import annotations

from pathlib import Path

from relay.config.errors import ConfigError, Location, Problem, sorted_problems
from relay.config.listener_checks import listener_problems
from relay.config.method_checks import method_problems
from relay.config.model import Config, build
from relay.config.parser import parse_file_partial, parse_text
from relay.config.resolve import Resolved, UnknownScope, resolve


def load(path: str | Path) -> Config:
    """Read, parse and validate a configuration file and its includes."""
    document, files, syntax = parse_file_partial(path)
    return _consistent(build(document, [str(f) for f in files], syntax))


def loads(text: str, name: str = "<text>") -> Config:
    return _consistent(build(parse_text(text, name)))


def _consistent(config: Config) -> Config:
    """Settings that are each valid but cannot work together are errors too."""
    problems = method_problems(config) + listener_problems(config)
    if problems:
        raise ConfigError(sorted_problems(problems))
    return config


__all__ = [
    "Config",
    "ConfigError",
    "Location",
    "Problem",
    "Resolved",
    "UnknownScope",
    "load",
    "loads",
    "resolve",
]
