"""relay: an asyncio SMTP outbound relay with Momentum-style bindings and binding groups."""

__version__ = "0.1.0"
