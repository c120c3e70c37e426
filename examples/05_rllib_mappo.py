"""Example 05 - RLlib (new API stack): one shared policy for every microgrid, many env runners.

RLlib is the scale-out path: the same script samples with ``--num-env-runners`` worker
processes on this machine, or on a Ray cluster (``--address``, see docs/training.md).

* The env is the scenario's ``MultiAgentMicrogrids`` (train split) wrapped in RLlib's
  ``ParallelPettingZooEnv``. Every microgrid has the same observation and action space, so
  one RLModule ("shared") serves all of them out of the box (parameter sharing). Shared
  modules need a way to tell agents apart: ``AgentIndicator`` appends a one-hot agent id.
* ``share_reward=True`` (env config): every microgrid is trained on the team's cost, the
  score's objective (with selfish rewards the price bids fail to cross).
* Rewards are multiplied by ``--reward-scale`` (they are -$10..-$150 per step);
  observations are O(1) already (tariffs in $/kWh, loads per peak).
* After every ``--eval-every`` iterations the deterministic policy is scored on the test
  days with ``powergrid.evaluation.evaluate`` (0 = no-trade rule, 1 = optimum); the curve
  goes to ``--out-dir``/learning_curve.csv, as examples/07 writes it.

    python -m venv /work/venv-rllib && . /work/venv-rllib/bin/activate
    pip install torch==2.13.0 && pip install -e ".[rllib]"
    python examples/05_rllib_mappo.py --iterations 40 --num-env-runners 2
    python examples/05_rllib_mappo.py --address auto --num-env-runners 32   # a Ray cluster
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from typing import Any

import numpy as np
import ray
import torch
from gymnasium import spaces
from pettingzoo.utils import BaseParallelWrapper
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

import powergrid
from powergrid.evaluation import evaluate

ENV_NAME = "heron_grid_microgrids"
MODULE = "shared"


class AgentIndicator(BaseParallelWrapper):
    """Append a one-hot agent id to every observation (same spaces for all agents) and
    multiply rewards by ``reward_scale``."""

    def __init__(self, env: Any, reward_scale: float = 1.0) -> None:
        super().__init__(env)
        self.ids = list(env.possible_agents)
        first = env.observation_space(self.ids[0])
        if any(env.observation_space(a) != first for a in self.ids):
            raise ValueError("a shared RLModule needs identical observation spaces for "
                             f"{self.ids}")
        eye = np.eye(len(self.ids), dtype=np.float32)
        self._onehot = {a: eye[i] for i, a in enumerate(self.ids)}
        low = np.concatenate([first.low, np.zeros(len(self.ids))]).astype(np.float32)
        high = np.concatenate([first.high, np.ones(len(self.ids))]).astype(np.float32)
        self._space = spaces.Box(low, high, dtype=np.float32)
        self.reward_scale = reward_scale

    def observation_space(self, agent):
        return self._space

    def _obs(self, obs: dict) -> dict:
        return {a: np.concatenate([o, self._onehot[a]]).astype(np.float32)
                for a, o in obs.items()}

    def reset(self, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._obs(obs), infos

    def step(self, actions):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        rewards = {a: r * self.reward_scale for a, r in rewards.items()}
        return self._obs(obs), rewards, terms, truncs, infos


def env_creator(env_config: dict) -> ParallelPettingZooEnv:
    config = dict(env_config)
    scale = config.pop("reward_scale", 1.0)
    scenario = config.pop("scenario")
    return ParallelPettingZooEnv(AgentIndicator(powergrid.make(scenario, **config), scale))


def build_config(args: argparse.Namespace) -> PPOConfig:
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config={"scenario": args.scenario, "share_reward": True,
                                           "reward_scale": args.reward_scale})
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1,
                     rollout_fragment_length="auto")
        .multi_agent(policies={MODULE}, policy_mapping_fn=lambda agent_id, *a, **k: MODULE)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs={MODULE: RLModuleSpec()}),
            model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                            vf_share_layers=False),
        )
        .training(train_batch_size_per_learner=args.train_batch_size,
                  minibatch_size=args.minibatch_size, num_epochs=args.num_epochs,
                  lr=args.lr, gamma=0.99, lambda_=0.95, vf_clip_param=100.0,
                  entropy_coeff=0.0)
        .debugging(seed=args.seed)
    )


class ModulePolicy:
    """Deterministic (mean action) policy of the trained shared RLModule, for ``evaluate``."""

    def __init__(self, module: Any, env: Any) -> None:
        self.module = module
        self.wrapper = AgentIndicator(env)

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not obs:
            return {}
        agents = list(obs)
        rows = self.wrapper._obs(obs)
        x = torch.as_tensor(np.stack([rows[a] for a in agents]))
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: x})
        dist = self.module.get_inference_action_dist_cls().from_logits(
            out[Columns.ACTION_DIST_INPUTS])
        act = np.clip(dist.to_deterministic().sample().numpy(), -1.0, 1.0).astype(np.float32)
        return {a: act[i] for i, a in enumerate(agents)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="p2p-2mg-v1")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--num-env-runners", type=int, default=2,
                        help="sampling worker processes (0 = sample in the driver)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto' or 'ray://head:10001'); "
                             "default: a local Ray with --num-cpus")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray (default: num_env_runners + 1)")
    parser.add_argument("--train-batch-size", type=int, default=4800, help="env steps")
    parser.add_argument("--minibatch-size", type=int, default=600)
    parser.add_argument("--num-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--reward-scale", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--test-days", type=int, nargs="*", default=None,
                        help="score on these test days only (default: all)")
    parser.add_argument("--out-dir", default="runs/rllib")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus or args.num_env_runners + 1, include_dashboard=False,
                 ignore_reinit_error=True, log_to_driver=False)
    if __name__ != "__main__":  # imported (tests): ship this file's code to the workers
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    register_env(ENV_NAME, env_creator)
    algo = build_config(args).build_algo()
    os.makedirs(args.out_dir, exist_ok=True)
    rule = evaluate("rule", args.scenario, "test", days=args.test_days, progress=False)
    curve: list[dict[str, float]] = []
    start = time.time()

    def log_point(iteration: int, steps: int) -> float:
        module = algo.get_module(MODULE)
        res = evaluate(lambda env: ModulePolicy(module, env), args.scenario, "test",
                       days=args.test_days, progress=False)
        curve.append({"iteration": iteration, "env_steps": steps,
                      "wall_s": round(time.time() - start, 1),
                      "test_score": float(res.mean["score"])})
        print(f"iter {iteration:3d}  env steps {steps:>8}  {curve[-1]['wall_s']:7.1f}s  "
              f"test score {curve[-1]['test_score']:.3f}", flush=True)
        return curve[-1]["test_score"]

    try:
        steps = 0
        for it in range(1, args.iterations + 1):
            result = algo.train()
            # agent steps over all agents; one env step is len(agents) agent steps
            steps = int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime",
                                                          steps))
            if it % args.eval_every == 0 or it == args.iterations:
                log_point(it, steps)
    finally:
        algo.stop()
        ray.shutdown()
    with open(os.path.join(args.out_dir, "learning_curve.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    summary = {"iterations": args.iterations, "env_steps": steps,
               "wall_s": curve[-1]["wall_s"], "test_score": curve[-1]["test_score"],
               "rule_score": float(rule.mean["score"]),
               "num_env_runners": args.num_env_runners}
    with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
