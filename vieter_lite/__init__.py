"""vieter_lite: a small self-hosted Arch Linux package repository and build server."""

__version__ = "0.1.0"
