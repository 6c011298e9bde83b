"""End-to-end tests against relay's container image: run by `make docker-test` (which
builds relay:local and sets RELAY_DOCKER_TESTS=1), skipped by `make test`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.harness import IMAGE, Docker, RelayContainer, Sink, docker

ENABLED = os.environ.get("RELAY_DOCKER_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="container tests: run by `make docker-test`")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image() -> str:
    docker("image", "inspect", IMAGE)  # built by `make docker`
    return IMAGE


@pytest.fixture
def env(image: str) -> Iterator[Docker]:
    started = Docker()
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture
def sink(env: Docker, tmp_path: Path) -> Sink:
    return Sink(env, tmp_path / "sink")


@pytest.fixture
def relay(env: Docker, sink: Sink, tmp_path: Path) -> RelayContainer:
    return RelayContainer(env, sink, tmp_path / "conf")
