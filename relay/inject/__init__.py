"""Injection: accepting mail over SMTP and handing it to the spool.

protocol is the SMTP conversation as a pure state machine; the checks it and the acceptance
step call are pure too (settings, addresses, checks, data, headers, message, auth, limits).
connection (the driver: one asyncio protocol per client), spooling (the hand-over to the
spool) and server (the listeners) are the only modules that do I/O.
"""

from relay.inject.auth import Credentials, CredentialsError, make_credentials_line
from relay.inject.server import BoundListener, ListenError, Listeners, start_listeners
from relay.inject.settings import InjectSettings, ListenerSettings, PeerSettings
from relay.inject.spooling import MessageStore

__all__ = [
    "BoundListener",
    "Credentials",
    "CredentialsError",
    "InjectSettings",
    "ListenError",
    "ListenerSettings",
    "Listeners",
    "MessageStore",
    "PeerSettings",
    "make_credentials_line",
    "start_listeners",
]
