from __future__ import annotations

import dataclasses

import pytest

from relay.deliver import DeliverySettings


def test_defaults_are_momentums() -> None:
    policy = DeliverySettings()
    assert policy.remote_smtp_port == 25
    assert policy.fully_resolve_before_smtp is True
    assert policy.delivery_method == ("ESMTP", "SMTP")
    assert (policy.connect_timeout, policy.ehlo_timeout, policy.mailfrom_timeout) == (300, 300, 300)
    assert (policy.rcptto_timeout, policy.body_timeout, policy.rset_timeout) == (300, 600, 30)
    assert policy.idle_timeout == 5
    assert (policy.tls, policy.tls_verify, policy.tls_ifavailable_fallback) == ("no", "no", True)
    assert policy.max_recipients_per_batch == 100
    assert policy.max_deliveries_per_connection == 0
    assert policy.max_recipients_per_connection == 0
    assert (policy.send_8bitmime, policy.transform_8bitmime_content) == ("no", "ifneeded")
    assert policy.gateway is None and policy.bind_address is None
    assert policy.ehlo_hostname


def test_frozen_and_helo_rules() -> None:
    policy = DeliverySettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.tls = "required"  # type: ignore[misc]
    assert policy.allows_esmtp and policy.allows_helo
    esmtp_only = DeliverySettings(delivery_method=("esmtp",))
    assert esmtp_only.allows_esmtp and not esmtp_only.allows_helo
