"""Infos as flat numbers with one fixed set of keys, for tools that turn infos into tensors.

TorchRL's ``PettingZooWrapper`` builds one ``Unbounded`` spec per key of the first
``reset()`` infos from ``torch.as_tensor(value)``, then writes every ``step()`` info into
it: a nested dict, a list of orders, ``None`` or a string cannot become a tensor, and a
key missing from ``reset()`` has no spec. This wrapper flattens each agent's info into
``"costs/total"``-style keys holding floats: lists become their length (``market/orders``
= number of orders), ``None`` becomes NaN, strings are dropped. The key set is fixed at
the first ``reset()`` (which already has ``step()``'s structure); a key a later step
lacks reads NaN, one it adds is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pettingzoo.utils.wrappers import BaseParallelWrapper


def flatten(info: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """One level of ``"a/b"`` keys with float values (see the module docstring)."""
    out: dict[str, float] = {}
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (list, tuple)):
            out[name] = float(len(value))
        elif value is None:
            out[name] = math.nan
        elif isinstance(value, (bool, int, float)):
            out[name] = float(value)
        elif hasattr(value, "__float__"):  # numpy scalars
            out[name] = float(value)
    return out


class FlatInfos(BaseParallelWrapper):
    """Flat, numeric infos with the same keys from ``reset()`` and every ``step()``."""

    def __init__(self, env):
        super().__init__(env)
        self.info_keys: dict[str, tuple[str, ...]] | None = None

    def _fixed(self, infos: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
        flat = {a: flatten(i) for a, i in infos.items()}
        if self.info_keys is None:
            self.info_keys = {a: tuple(f) for a, f in flat.items()}
        return {a: {k: f.get(k, math.nan) for k in self.info_keys.get(a, tuple(f))}
                for a, f in flat.items()}

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return obs, self._fixed(infos)

    def step(self, actions):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        return obs, rewards, terms, truncs, self._fixed(infos)
