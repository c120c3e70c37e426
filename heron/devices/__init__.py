"""Domain-free device base class."""

from heron.devices.base import Device

__all__ = ["Device"]
