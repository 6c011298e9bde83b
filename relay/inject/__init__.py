"""Injection: accepting mail over SMTP and handing it to the spool.

Pure decisions live in settings, addresses, policy, data, headers, message, auth and limits;
session (aiosmtpd glue) and server (listeners) are the only modules that touch sockets.
"""

from relay.inject.auth import Credentials, CredentialsError, make_credentials_line
from relay.inject.handoff import MessageStore
from relay.inject.server import BoundListener, ListenError, Listeners, start_listeners
from relay.inject.settings import InjectSettings, ListenerSettings, PeerSettings

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
