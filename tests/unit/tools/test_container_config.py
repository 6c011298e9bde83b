"""docker/relay.conf, the image's default configuration: valid, and nothing in it listens
beyond loopback (the admin API least of all)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from relay.config import load
from relay.wiring import compile_settings

CONFIG = Path(__file__).parents[3] / "docker" / "relay.conf"


def test_container_config_listens_on_loopback_only() -> None:
    settings = compile_settings(load(str(CONFIG)))
    admin = settings.daemon.admin_listen
    assert admin is not None and ipaddress.ip_address(admin.host).is_loopback
    assert settings.inject.listeners
    for listener in settings.inject.listeners:
        assert ipaddress.ip_address(listener.address[0]).is_loopback, listener.listen
    for binding in settings.bindings.values():
        if binding.bind_address is not None:
            assert ipaddress.ip_address(binding.bind_address).is_loopback


def test_container_config_puts_state_where_the_image_keeps_it() -> None:
    settings = compile_settings(load(str(CONFIG)))
    assert settings.daemon.spoolbase == Path("/var/spool/relay")  # the image's volume
    assert settings.daemon.event_log == "/var/log/relay/events.jsonl"
