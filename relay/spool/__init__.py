"""The durable spool: the only component that writes message state to disk."""

from relay.spool.errors import (
    CorruptMessage,
    MessageNotFound,
    SpoolError,
    SpoolFullError,
    SpoolWriteError,
)
from relay.spool.fileops import FileOps
from relay.spool.model import Envelope, NewMessage, Recipient, RecipientState
from relay.spool.statistics import SpoolStatistics
from relay.spool.store import Spool

__all__ = [
    "CorruptMessage",
    "Envelope",
    "FileOps",
    "MessageNotFound",
    "NewMessage",
    "Recipient",
    "RecipientState",
    "Spool",
    "SpoolError",
    "SpoolFullError",
    "SpoolStatistics",
    "SpoolWriteError",
]
