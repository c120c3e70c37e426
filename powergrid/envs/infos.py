"""The infos ``reset()`` returns: the same keys and nesting as ``step()``'s, nothing measured.

Tools that build an info spec from the first ``reset()`` (TorchRL's ``PettingZooWrapper``)
or stack infos across steps need one structure for the whole episode. The structure is
taken from a real step of a copy of the env, so it follows whatever ``step()`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def neutral(value: Any) -> Any:
    """``value``'s structure with nothing measured: NaN numbers, 0 counts, False flags.

    Strings (protocol names, modes) are kept: they describe the configuration, not a step.
    """
    if isinstance(value, Mapping):
        return {k: neutral(v) for k, v in value.items()}
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0
    if isinstance(value, float):
        return math.nan
    if isinstance(value, (list, tuple)):
        return []
    return value if isinstance(value, str) else None
