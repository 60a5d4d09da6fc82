"""vmws: a WebSocket gateway for virtual machines."""

__version__ = "0.1.0"
