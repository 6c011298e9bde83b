from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relay.config import Config, load


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write("relay.conf", text) -> path; files land in a per-test folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def conf(write: Callable[..., Path]) -> Callable[[str], Config]:
    def _conf(text: str) -> Config:
        return load(write("relay.conf", text))

    return _conf
