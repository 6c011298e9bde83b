"""Using every core: injection in worker processes, one scheduler process.

Each injection worker listens on the same addresses (SO_REUSEPORT), spools what it accepts
into its own spool shard (so a 250 still means "fsynced"), and announces each new message
to the scheduler process over a local socket. The scheduler process reads content and
journals outcomes through the same socket: each shard keeps exactly one writer, and limits,
throttles and adaptive state stay in one place.
"""
