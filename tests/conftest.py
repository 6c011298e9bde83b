pytest_plugins = ["tests.support.fixtures", "tests.integration.relay_harness"]
