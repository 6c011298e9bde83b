"""The suppression list: recipients relay refuses (or drops) at injection because they
hard-bounced or complained before, per tenant or global.

entries.py is the in-memory set every injecting process asks (pure, O(1) per recipient);
store.py keeps it durable in SQLite in the spool directory and lets other processes (the
injection workers) follow the changes.
"""
