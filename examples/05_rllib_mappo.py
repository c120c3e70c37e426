"""Example 05 - RLlib (new API stack): MAPPO with one shared policy and many env runners.

RLlib is the scale-out path: the same script samples with ``--num-env-runners`` worker
processes on this machine, or on a Ray cluster (``--address``, see docs/training.md).

* **Shared policy.** Every microgrid of the scenario has the same observation and action
  space, so one RLModule (``"shared"``) serves all of them (parameter sharing). Its input
  is the learner's row of ``powergrid.policies.features``, as in examples/07: the agent's
  observation, a one-hot agent id and the rule's action, scaled to [-1, 1] by the
  observation space's bounds.
* **MAPPO: a centralised critic on new API stack terms.** ``TeamRows`` gives each agent a
  Dict observation ``{"obs": its row, "state": every agent's row of the env + its id}``
  (the env's joint observation); ``CentralCriticModule`` is a ``TorchRLModule`` whose
  actor reads ``"obs"`` only and whose value function (``ValueFunctionAPI``) reads
  ``"state"``. RLlib's PPO learner, GAE and connectors need nothing else: the critic's
  input simply travels in the observation. Acting needs ``"obs"`` only (decentralised).
* **Residual on the rule** (``--residual``, default): the env action is
  ``RuleBasedPolicy``'s action plus the learned one, clipped to [-1, 1]; the actor's last
  layer starts at ~0, so training starts from the rule.
* **Team reward:** ``share_reward=True``, every microgrid is trained on the team's cost, the
  score's objective; rewards are multiplied by ``--reward-scale`` (they are -$10..-$150
  per step).
* **Exploration noise** is not learned: its log-std goes linearly from ``--init-logstd``
  to ``--final-logstd`` over the run (set on the learner before each iteration).
* Every ``--eval-every`` iterations the actor is exported (``agent.pt``, the checkpoint
  format of examples/07, loadable by ``powergrid.policies.load_policy``) and scored on the
  test days with ``powergrid.evaluation.evaluate`` (0 = no-trade rule, 1 = optimum); the
  curve goes to ``--out-dir``/learning_curve.csv. The test days never steer training.

    python -m venv --system-site-packages /work/venv-rllib
    /work/venv-rllib/bin/pip install "ray[rllib]==2.60.0"
    /work/venv-rllib/bin/python examples/05_rllib_mappo.py --num-env-runners 2
    python examples/05_rllib_mappo.py --address auto --num-env-runners 32   # a Ray cluster
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import ray
import torch
import torch.nn as nn
from gymnasium import spaces
from pettingzoo.utils import BaseParallelWrapper
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

import powergrid
from powergrid.baselines import RuleBasedPolicy
from powergrid.evaluation import evaluate
from powergrid.policies import load_policy
from powergrid.policies.features import (
    RowLayout,
    agent_rows,
    central_state,
    rule_actions,
    split_rows,
)
from powergrid.policies.learned import OBS_EPS

ENV_NAME = "heron_grid_microgrids"
MODULE = "shared"


def row_scaling(env: Any, layout: RowLayout) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-width of a row's features (observation bounds, id and rule in [0, 1]
    and [-1, 1]): ``(row - centre) / half`` lies in [-1, 1]."""
    space = env.observation_space(layout.agents[0])
    low = [space.low, np.zeros(layout.n_agents), -np.ones(layout.act_dim)]
    high = [space.high, np.ones(layout.n_agents), np.ones(layout.act_dim)]
    low, high = np.concatenate(low), np.concatenate(high)
    return ((high + low) / 2).astype(np.float32), np.maximum((high - low) / 2, 1e-6)


class TeamRows(BaseParallelWrapper):
    """Per agent ``{"obs": scaled row, "state": joint rows + agent id}``; residual actions on
    the rule; rewards times ``reward_scale``. One Dict space shared by all agents."""

    def __init__(self, env: Any, reward_scale: float = 1.0, residual: bool = True) -> None:
        super().__init__(env)
        self.layout = RowLayout.of(env, rule_features=True)
        self.rule = RuleBasedPolicy(env)
        self.centre, self.half = row_scaling(env, self.layout)
        d, n = self.layout.row_dim, self.layout.n_agents
        self._space = spaces.Dict({
            "obs": spaces.Box(-np.inf, np.inf, (d,), np.float32),
            "state": spaces.Box(-np.inf, np.inf, (d * n + n,), np.float32)})
        self._act = spaces.Box(-1.0, 1.0, (self.layout.act_dim,), np.float32)
        self.reward_scale, self.residual = reward_scale, residual
        self._rule_action = None

    def observation_space(self, agent):
        return self._space

    def action_space(self, agent):
        return self._act

    def _obs(self, obs: dict) -> dict:
        if not obs:  # the day is over
            return {}
        self._rule_action = rule_actions(self.rule, self.layout, obs)
        rows = (agent_rows(self.layout, obs, self._rule_action) - self.centre) / self.half
        rows = rows.astype(np.float32)
        state = central_state(self.layout, rows)
        return {a: {"obs": rows[i], "state": state[i]} for i, a in enumerate(self.layout.agents)}

    def reset(self, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._obs(obs), infos

    def step(self, actions):
        rows = np.stack([np.asarray(actions[a], np.float32) for a in self.layout.agents])
        if self.residual:
            rows = rows + self._rule_action
        act = {a: x[0] for a, x in split_rows(self.layout, np.clip(rows, -1.0, 1.0)).items()}
        obs, rewards, terms, truncs, infos = self.env.step(act)
        rewards = {a: r * self.reward_scale for a, r in rewards.items()}
        return self._obs(obs), rewards, terms, truncs, infos


def env_creator(env_config: dict) -> ParallelPettingZooEnv:
    config = dict(env_config)
    scale, residual = config.pop("reward_scale", 1.0), config.pop("residual", True)
    env = powergrid.make(config.pop("scenario"), **config)
    return ParallelPettingZooEnv(TeamRows(env, scale, residual))


def mlp(n_in: int, hidden: int, n_out: int, out_std: float) -> nn.Sequential:
    """Two tanh hidden layers, orthogonal init (as examples/07)."""
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                        nn.Tanh(), nn.Linear(hidden, n_out))
    for layer, std in zip(net[::2], (np.sqrt(2), np.sqrt(2), out_std)):
        nn.init.orthogonal_(layer.weight, std)
        nn.init.zeros_(layer.bias)
    return net


class CentralCriticModule(TorchRLModule, ValueFunctionAPI):
    """Gaussian actor on ``obs["obs"]``; value function on ``obs["state"]`` (MAPPO)."""

    def setup(self) -> None:
        hidden = self.model_config.get("hidden", 64)
        act_dim = self.action_space.shape[0]
        self.actor = mlp(self.observation_space["obs"].shape[0], hidden, act_dim, 0.01)
        self.critic = mlp(self.observation_space["state"].shape[0], hidden, 1, 1.0)
        # a buffer, not a parameter: set by the schedule, synced to the env runners
        self.register_buffer("log_std", torch.full((act_dim,), self.model_config["logstd"]))

    def _forward(self, batch: dict, **kwargs) -> dict:
        mean = self.actor(batch[Columns.OBS]["obs"])
        return {Columns.ACTION_DIST_INPUTS: torch.cat(
            [mean, self.log_std.expand_as(mean)], dim=-1)}

    def compute_values(self, batch: dict, embeddings: Any = None) -> torch.Tensor:
        return self.critic(batch[Columns.OBS]["state"]).squeeze(-1)


def build_config(args: argparse.Namespace) -> PPOConfig:
    env_config = {"scenario": args.scenario, "share_reward": True,
                  "reward_scale": args.reward_scale, "residual": args.residual}
    lr_end = args.lr if args.constant_lr else args.lr * 0.05
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(num_env_runners=args.num_env_runners,
                     num_envs_per_env_runner=args.num_envs_per_env_runner,
                     rollout_fragment_length="auto")
        .multi_agent(policies={MODULE}, policy_mapping_fn=lambda agent_id, *a, **k: MODULE)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={MODULE: RLModuleSpec(
            module_class=CentralCriticModule,
            model_config={"hidden": args.hidden, "logstd": args.init_logstd})}))
        .training(train_batch_size_per_learner=args.train_batch_size,
                  minibatch_size=args.minibatch_size, num_epochs=args.num_epochs,
                  lr=[[0, args.lr], [args.iterations * args.train_batch_size, lr_end]],
                  gamma=0.99, lambda_=0.95, clip_param=0.2, vf_clip_param=1e4,
                  vf_loss_coeff=0.5, entropy_coeff=0.0, grad_clip=0.5,
                  use_kl_loss=False)
        .debugging(seed=args.seed)
    )


def export(module: CentralCriticModule, env: Any, args: argparse.Namespace, path: str) -> str:
    """The actor as an examples/07 checkpoint (``powergrid.policies.load_policy`` reads it)."""
    layout = RowLayout.of(env, rule_features=True)
    centre, half = row_scaling(env, layout)
    torch.save({"actor": {k: v.detach().cpu().clone() for k, v in
                          module.actor.state_dict().items()},
                "obs_mean": torch.as_tensor(centre, dtype=torch.float64),
                "obs_var": torch.as_tensor(half.astype(np.float64) ** 2 - OBS_EPS),
                "layout": asdict(layout), "residual": args.residual,
                "scenario": args.scenario, "algorithm": "MAPPO (RLlib)",
                "args": vars(args)}, path)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="p2p-2mg-v1")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--num-env-runners", type=int, default=2,
                        help="sampling worker processes (0 = sample in the driver)")
    parser.add_argument("--num-envs-per-env-runner", type=int, default=1)
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto', 'HEAD_IP:6379' or "
                             "'ray://HEAD_IP:10001'; default: $RAY_ADDRESS if set, else a "
                             "local Ray with --num-cpus)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray (default: num_env_runners + 1)")
    parser.add_argument("--train-batch-size", type=int, default=3072, help="env steps")
    parser.add_argument("--minibatch-size", type=int, default=1536, help="agent steps")
    parser.add_argument("--num-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--constant-lr", action="store_true",
                        help="no linear decay of the learning rate (to 5%% of --lr)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--init-logstd", type=float, default=-1.0)
    parser.add_argument("--final-logstd", type=float, default=-2.5)
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--reward-scale", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--test-days", type=int, nargs="*", default=None,
                        help="score on these test days only (default: all)")
    parser.add_argument("--out-dir", default="runs/rllib")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    if args.address or os.environ.get("RAY_ADDRESS"):  # join a running cluster
        ray.init(address=args.address)  # None: ray.init reads RAY_ADDRESS
    else:
        ray.init(num_cpus=args.num_cpus or args.num_env_runners + 1, include_dashboard=False,
                 ignore_reinit_error=True, log_to_driver=False)
    if __name__ != "__main__":  # imported (tests): ship this file's code to the workers
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    register_env(ENV_NAME, env_creator)
    algo = build_config(args).build_algo()
    os.makedirs(args.out_dir, exist_ok=True)
    ckpt = os.path.join(args.out_dir, "agent.pt")
    env = powergrid.make(args.scenario)
    rule = evaluate("rule", args.scenario, "test", days=args.test_days, progress=False)
    curve: list[dict[str, float]] = []
    start = time.time()

    def log_point(iteration: int, steps: int) -> float:
        export(algo.get_module(MODULE), env, args, ckpt)
        res = evaluate(load_policy(ckpt), args.scenario, "test", days=args.test_days,
                       progress=False)
        curve.append({"iteration": iteration, "env_steps": steps,
                      "wall_s": round(time.time() - start, 1),
                      "test_score": float(res.mean["score"])})
        print(f"iter {iteration:3d}  env steps {steps:>8}  {curve[-1]['wall_s']:7.1f}s  "
              f"test score {curve[-1]['test_score']:.3f}", flush=True)
        with open(os.path.join(args.out_dir, "learning_curve.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(curve[0]))  # kept if interrupted
            writer.writeheader()
            writer.writerows(curve)
        return curve[-1]["test_score"]

    def set_log_std(value: float) -> None:  # on the learner, then on every env runner
        algo.learner_group.foreach_learner(
            lambda learner: learner.module[MODULE].log_std.fill_(value))
        algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group,
                                           inference_only=True, timeout_seconds=None)

    try:
        steps = 0
        log_point(0, 0)
        for it in range(1, args.iterations + 1):
            frac = (it - 1) / max(1, args.iterations - 1)
            set_log_std(args.init_logstd + frac * (args.final_logstd - args.init_logstd))
            result = algo.train()
            steps = int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime",
                                                          steps))
            if it % args.eval_every == 0 or it == args.iterations:
                log_point(it, steps)
    finally:
        algo.stop()
        ray.shutdown()
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
