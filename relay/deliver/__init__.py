"""Delivery: route resolution (gateway / MX) and the SMTP client side.

    router = Router(DnsResolver(resolv_conf, port=...))
    route = await router.resolve(policy, domain)               # RouteError
    conn = await open_connection(policy, domain, router.destinations(policy, route))
    outcomes = await conn.send(message)                        # one per recipient
    await conn.close()

No scheduling here: the scheduler decides what outcomes mean for queue state.
"""

from relay.deliver.connection import HostGate, OutboundConnection, open_connection
from relay.deliver.dns import DnsAnswer, DnsResolver, LookupStatus, MxRecord
from relay.deliver.outcome import (
    ConnectError,
    DeliveryError,
    Failure,
    FailureKind,
    MessageLike,
    Phase,
    RecipientOutcome,
    Remote,
    RouteError,
)
from relay.deliver.policy import DeliveryPolicy
from relay.deliver.route import Destination, MxHost, Route, Router, parse_gateway
from relay.outcome import EnhancedStatus, Outcome, Reply

__all__ = [
    "ConnectError",
    "DeliveryError",
    "DeliveryPolicy",
    "Destination",
    "DnsAnswer",
    "DnsResolver",
    "EnhancedStatus",
    "Failure",
    "FailureKind",
    "HostGate",
    "LookupStatus",
    "MessageLike",
    "MxHost",
    "MxRecord",
    "OutboundConnection",
    "Outcome",
    "Phase",
    "RecipientOutcome",
    "Remote",
    "Reply",
    "Route",
    "RouteError",
    "Router",
    "open_connection",
    "parse_gateway",
]
