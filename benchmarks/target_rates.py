"""The rates issue 15 sets targets for, as one JSON line (bench_env.py's measurements).

    PYTHONPATH=. python benchmarks/target_rates.py            # in this checkout
    PYTHONPATH=DIR python benchmarks/target_rates.py          # the same script, another one

For a loaded machine where ``bench_env.py --baseline`` (which also times the pandapower
path and IEEE-34 random-point solves) takes too long: run it alternately for both
checkouts and compare the best of the runs. ``src`` says which package was timed (set
``PYTHONPATH``: an editable install otherwise shadows a script's checkout).
"""

from __future__ import annotations

import json

import powergrid
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

try:  # run as a script: benchmarks/ is on sys.path
    from bench_env import best_rate, n_microgrids, pf_solves, scalar_steps, vector_steps
    from feeder_stress import STRESSED_FEEDER
except ImportError:  # imported as benchmarks.target_rates
    from benchmarks.bench_env import (
        best_rate,
        n_microgrids,
        pf_solves,
        scalar_steps,
        vector_steps,
    )
    from benchmarks.feeder_stress import STRESSED_FEEDER


def main() -> None:
    out: dict[str, object] = {"src": powergrid.__file__}
    env = MultiAgentMicrogrids({"power_flow": "fast"})
    out["scalar"] = best_rate(scalar_steps(env, 1500), 4)
    out["pf_solves"] = best_rate(pf_solves(env, 4000), 4)
    out["B1"] = best_rate(vector_steps(VectorMicrogrids(1), 1500), 4)
    out["B64"] = best_rate(vector_steps(VectorMicrogrids(64), 300), 4)
    out["B1024"] = best_rate(vector_steps(VectorMicrogrids(1024), 60), 4)
    out["N8"] = best_rate(scalar_steps(MultiAgentMicrogrids(
        {"microgrids": n_microgrids(8)}), 600), 4)
    out["ieee34_scalar"] = best_rate(scalar_steps(MultiAgentMicrogrids(STRESSED_FEEDER), 1000), 4)
    out["ieee34_B1024"] = best_rate(vector_steps(VectorMicrogrids(1024, STRESSED_FEEDER), 30), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
