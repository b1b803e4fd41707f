"""The server helpers the serving tests share (they live in the package: notebooks use them too)."""

from chargpt.serving.app import free_port, running_server


__all__ = ["free_port", "running_server"]
