"""Checks of ``reset(seed, options)`` shared by MultiAgentMicrogrids and VectorMicrogrids.

Both run before the env changes any state, so a rejected reset leaves the env as it was.
Adding a reset option is one entry in ``RESET_OPTIONS``: its name and a check that
returns the normalised value or raises ``ValueError`` saying what was expected.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from heron.validation import Range
from powergrid.envs.config import DAY_OF_YEAR
from powergrid.envs.days import SPLITS

SEED = Range(0, integer=True)


def in_range(valid: Range) -> Callable[[Any], Any]:
    """Check for a number (or None) in ``valid``."""
    def check(value: Any) -> Any:
        if value is None:
            return None
        v = valid.coerce(value)
        if v is None:
            raise ValueError(f"expected None or {valid.describe()}")
        return v
    return check


def one_of(*choices: Any) -> Callable[[Any], Any]:
    """Check for one of ``choices`` (or None)."""
    def check(value: Any) -> Any:
        if value is not None and value not in choices:
            raise ValueError(f"expected None or one of {choices}")
        return value
    return check


# option -> check of one env's value. A missing option means the config's value.
RESET_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "start_day": in_range(DAY_OF_YEAR),  # day of year of the episode's first step
    "split": one_of(*SPLITS),            # days to draw from (powergrid.envs.days)
}
# options of the whole batch (VectorMicrogrids only), not one value per env
BATCH_OPTIONS = ("reset_mask",)
# Keys accepted and ignored: PettingZoo's parallel_api_test probes reset(options={"options": 1}).
# Every other unknown key raises, so a typo never silently falls back to a default.
IGNORED_OPTIONS = frozenset({"options"})


def check_seed(seed: Any) -> int | None:
    """``seed`` as a Python int (numpy integers too), None, or a ValueError."""
    if seed is None:
        return None
    v = SEED.coerce(seed)
    if v is None:
        raise ValueError(f"reset seed must be None or {SEED.describe()}, got {reprlib.repr(seed)}")
    return v


def check_seeds(seed: Any, num_envs: int) -> list[int] | None:
    """The vector env's seeds: one int (env i gets seed + i) or ``num_envs`` ints."""
    if seed is None:
        return None
    if _is_batch(seed):
        seeds = [check_seed(s) for s in seed]
        if len(seeds) != num_envs or None in seeds:
            raise ValueError(f"reset seed must be an int or {num_envs} ints >= 0, got "
                             f"{reprlib.repr(seed)}")
        return seeds  # type: ignore[return-value]
    first = check_seed(seed)
    return [first + i for i in range(num_envs)]  # type: ignore[operator]


def reset_options(options: Any, num_envs: int | None = None) -> dict[str, Any]:
    """Validated options: the given ``RESET_OPTIONS`` keys, normalised (missing ones absent).

    With ``num_envs`` (the vector env) each value may also be a list/array of one value
    per env; the result then holds a list of ``num_envs`` values per option.
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"reset options must be a dict or None, got {type(options).__name__}")
    valid = list(RESET_OPTIONS) + ([] if num_envs is None else list(BATCH_OPTIONS))
    for key in options:
        if key in BATCH_OPTIONS and num_envs is None:
            raise ValueError(f"reset option {key!r} applies to VectorMicrogrids (a batch of "
                             f"envs), not to one env")
        if key not in valid and key not in IGNORED_OPTIONS:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown reset option {key!r}{hint}; valid options: {valid}")
    out = {}
    if "reset_mask" in options:
        out["reset_mask"] = check_reset_mask(options["reset_mask"], num_envs)
    for key, check in RESET_OPTIONS.items():
        if key not in options:
            continue
        value = options[key]
        if num_envs is None:
            out[key] = _checked(key, check, value)
        elif _is_batch(value):
            if len(value) != num_envs:
                raise ValueError(f"reset option {key!r} has {len(value)} values, expected one "
                                 f"or {num_envs} (one per env)")
            out[key] = [_checked(f"{key}[{i}]", check, v) for i, v in enumerate(value)]
        else:
            out[key] = [_checked(key, check, value)] * num_envs
    return out


def check_reset_mask(mask: Any, num_envs: int) -> np.ndarray:
    """``reset_mask``: (num_envs,) bools saying which envs ``reset()`` restarts."""
    arr = np.asarray(mask) if _is_batch(mask) else None
    if arr is None or arr.shape != (num_envs,) or arr.dtype != np.bool_:
        raise ValueError(f"reset option 'reset_mask' = {reprlib.repr(mask)} is invalid: "
                         f"expected {num_envs} bools (one per env)")
    if not arr.any():
        raise ValueError("reset option 'reset_mask' selects no env: reset at least one")
    return arr.copy()


def _checked(key: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ValueError(f"reset option {key!r} = {reprlib.repr(value)} is invalid: "
                         f"{exc}") from None


def _is_batch(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim >= 1
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
