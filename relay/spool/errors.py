"""Typed spool errors: injection maps them to SMTP replies, the scheduler to retries."""

import errno


class SpoolError(Exception):
    """The spool could not do what was asked; nothing was acknowledged."""


class SpoolFullError(SpoolError):
    """No space left on the spool's filesystem (ENOSPC / EDQUOT): SMTP 452 4.3.1."""


class SpoolWriteError(SpoolError):
    """A write, fsync or rename failed for another reason (EIO, EACCES, ...): SMTP 451 4.3.0."""


class MessageNotFound(SpoolError):
    """No message with that id is in the spool."""


class CorruptMessage(SpoolError):
    """A spool file failed its checksum or lacks its end marker."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def from_os_error(exc: OSError, action: str) -> SpoolError:
    """Translate an OSError at the spool boundary: disk full -> SpoolFullError, else write error."""
    if exc.errno in _FULL_ERRNOS:
        return SpoolFullError(f"{action}: spool disk full ({exc.strerror or exc})")
    return SpoolWriteError(f"{action}: {exc.strerror or exc} (errno {exc.errno})")
