"""Configuration errors that name the file, line, column and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) in a configuration."""

    location: Location
    message: str
    option: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: "
        if self.option:
            text += f"{self.option}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(Exception):
    """The configuration is not valid; `problems` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ValueProblem(ValueError):
    """A value does not have an accepted form; the message lists the forms that are."""


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in file order: files as first met, then line and column."""
    order: dict[str, int] = {}
    for problem in problems:
        order.setdefault(problem.location.file, len(order))
    return sorted(
        problems,
        key=lambda p: (order[p.location.file], p.location.line, p.location.column),
    )
