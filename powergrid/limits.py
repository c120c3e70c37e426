"""The sane ranges of physical and money inputs (configs and device parameters).

Why bounded at all: a finite but absurd value (a 1e308 kW generator, a 1e308 $/kWh tariff)
overflows to inf inside a step, turning rewards into +-inf or raising mid-training. Every
bound is far beyond any real microgrid (MW scale, a few $/kWh), so no honest study hits it,
while every product the env forms (kW x $/kWh x hours x steps) stays finite.
"""

from __future__ import annotations

from heron.validation import Range

MAX_POWER_KW = 1e7            # 10 GW: ratings, loads, ramps
MAX_ENERGY_KWH = 1e8          # 100 GWh of storage
MAX_PRICE_PER_KWH = 1e3       # tariffs, fees, marginal costs ($/kWh)
MAX_MONEY = 1e9               # fixed costs and penalty rates ($)
MAX_EPISODE_STEPS = 100_000   # > 11 years of hourly steps; episode series stay < 100 MB

POWER_KW = Range(0.0, MAX_POWER_KW, low_open=True, unit="kW")
POWER_KW_OR_ZERO = Range(0.0, MAX_POWER_KW, unit="kW")
SIGNED_POWER_KW = Range(-MAX_POWER_KW, MAX_POWER_KW, unit="kW")
RAMP_KW_PER_H = Range(0.0, MAX_POWER_KW, low_open=True, unit="kW/h")
ENERGY_KWH = Range(0.0, MAX_ENERGY_KWH, low_open=True, unit="kWh")
PRICE_PER_KWH = Range(0.0, MAX_PRICE_PER_KWH, unit="$/kWh")
COST_PER_KW2H = Range(0.0, MAX_PRICE_PER_KWH, unit="$/(kW^2 h)")
MONEY = Range(0.0, MAX_MONEY, unit="$")
MONEY_PER_HOUR = Range(0.0, MAX_MONEY, unit="$/h")
FRACTION = Range(0.0, 1.0)
EFFICIENCY = Range(0.0, 1.0, low_open=True)
