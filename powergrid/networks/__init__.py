"""Network builders (pandapower ``create_*`` style functions returning a net)."""

from powergrid.networks.ieee13 import create_ieee13, create_ieee13_feeder
from powergrid.networks.ieee34 import create_ieee34, create_ieee34_feeder
from powergrid.networks.multi_microgrid import (
    DEFAULT_PCC_BUSES,
    NETWORKS,
    FeederDevice,
    MicrogridNetwork,
    SharedFeederSpec,
    create_multi_microgrid,
    create_shared_feeder,
    make_network,
)

__all__ = ["DEFAULT_PCC_BUSES", "NETWORKS", "FeederDevice", "MicrogridNetwork",
           "SharedFeederSpec", "create_ieee13", "create_ieee13_feeder", "create_ieee34",
           "create_ieee34_feeder", "create_multi_microgrid", "create_shared_feeder",
           "make_network"]
