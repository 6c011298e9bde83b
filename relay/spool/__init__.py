"""The durable spool: the only component that writes message state to disk."""
