"""Delivery: route resolution (gateway / MX) and the SMTP client side.

    router = Router(DnsResolver(resolv_conf, port=...))
    route = await router.resolve(settings, domain)             # RouteError
    conn = await open_connection(settings, domain, router.destinations(settings, route))
    results = await conn.send(message)                         # a RecipientResult each
    await conn.close()

`settings` is the binding x domain's `DeliverySettings`. No scheduling here: the scheduler
decides what the results mean for queue state.
"""

from relay.deliver.connection import HostGate, OutboundConnection, open_connection
from relay.deliver.dns import DnsAnswer, DnsResolver, LookupStatus, MxRecord
from relay.deliver.errors import (
    ConnectError,
    DeliveryError,
    DeliveryFailure,
    FailureKind,
    MessageLike,
    RouteError,
)
from relay.deliver.route import Destination, MxHost, Route, Router, parse_gateway
from relay.deliver.settings import DeliverySettings
from relay.outcome import EnhancedStatus, Outcome, Phase, RecipientResult, Remote, Reply

__all__ = [
    "ConnectError",
    "DeliveryError",
    "DeliveryFailure",
    "DeliverySettings",
    "Destination",
    "DnsAnswer",
    "DnsResolver",
    "EnhancedStatus",
    "FailureKind",
    "HostGate",
    "LookupStatus",
    "MessageLike",
    "MxHost",
    "MxRecord",
    "OutboundConnection",
    "Outcome",
    "Phase",
    "RecipientResult",
    "Remote",
    "Reply",
    "Route",
    "RouteError",
    "Router",
    "open_connection",
    "parse_gateway",
]
