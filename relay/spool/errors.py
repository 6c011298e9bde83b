"""Typed spool errors: injection maps them to SMTP replies, the scheduler to retries."""


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
