"""Operators' tools beside the daemon: `relay sink` (a recording SMTP sink to try a
configuration against) and `relay health` (the container health check)."""
