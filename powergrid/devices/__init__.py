"""Power devices. To add your own, subclass ``PowerDevice`` and give it a ``DeviceParams``."""

from powergrid.devices.base import DeviceParams, PowerDevice, StepContext
from powergrid.devices.ess import ESS, ESSParams
from powergrid.devices.generator import Generator, GeneratorParams
from powergrid.devices.solar import Solar, SolarParams

__all__ = [
    "DeviceParams", "PowerDevice", "StepContext",
    "ESS", "ESSParams", "Generator", "GeneratorParams", "Solar", "SolarParams",
]
