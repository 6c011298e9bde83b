"""Coverage-guided fuzzing of the same properties with atheris (libFuzzer), one target a
run, in its own process (libFuzzer owns the process and exits on the first failure):

    python -m tests.reliability.atheris_fuzz TARGET -runs=20000 [libFuzzer flags]

TARGET: smtp, data, config or spool (fuzz_targets.py has the properties).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import atheris

# The modules each target is about: only they are instrumented for coverage (all of relay
# would take seconds at every start).
MODULES = {
    "smtp": ["relay.inject.protocol", "relay.inject.addresses", "relay.esmtp"],
    "data": ["relay.inject.data"],
    "config": ["relay.config.lexer", "relay.config.parser", "relay.config.values"],
    "spool": ["relay.spool.format"],
}
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in MODULES:
    with atheris.instrument_imports(include=MODULES[sys.argv[1]]):
        for module in MODULES[sys.argv[1]]:
            importlib.import_module(module)

from relay.spool.format import RecordKind  # noqa: E402 (after the instrumented imports)
from tests.reliability import fuzz_targets  # noqa: E402


def _smtp(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    fuzz_targets.smtp_session(fdp.ConsumeBytes(fdp.remaining_bytes()), cuts)


def _data(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    size = fdp.PickValueInList([0, 1, 50, 500, 3000])
    normalize = fdp.ConsumeBool()
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    fuzz_targets.data_stream(fdp.ConsumeBytes(fdp.remaining_bytes()), cuts, size, normalize)


def _config(data: bytes) -> None:
    fuzz_targets.config_text(data.decode("utf-8", "replace"))


def _spool(data: bytes) -> None:
    fuzz_targets.spool_record(data)
    if data:
        fuzz_targets.spool_body(RecordKind((data[0] % 3) + 1), data[1:])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "smtp": _smtp,
    "data": _data,
    "config": _config,
    "spool": _spool,
}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
