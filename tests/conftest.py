"""Hypothesis profiles: `make test` runs every property test on a fixed sequence of examples
(derandomized, no example database), so a green suite stays green on the same commit; `make
soak` (HYPOTHESIS_PROFILE=explore) draws new examples each run to find what the fixed ones
miss."""

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

pytest_plugins = ["tests.support.fixtures", "tests.integration.relay_harness"]
