"""Network builders (pandapower ``create_*`` style functions returning a net)."""

from powergrid.networks.ieee13 import create_ieee13, create_ieee13_feeder
from powergrid.networks.multi_microgrid import (
    FeederDevice,
    MicrogridNetwork,
    create_multi_microgrid,
)

__all__ = ["FeederDevice", "MicrogridNetwork", "create_ieee13", "create_ieee13_feeder",
           "create_multi_microgrid"]
