"""Example 05 - multi-agent PPO with RLlib's new API stack on MultiAgentMicrogrids.

The env is registered with ``ray.tune.registry.register_env`` and wrapped in RLlib's
``ParallelPettingZooEnv``. Two set-ups:

* ``--shared-policy``: one RLModule ("shared") acts for every microgrid (parameter sharing;
  observations padded to a common space with a one-hot agent id, see ``SharedSpaces``);
* default: one RLModule per microgrid (``MG1``, ``MG2``): independent PPO learners.

Each module has its own actor and critic on the agent's local observation, i.e. this is
independent / parameter-shared PPO; a MAPPO-style centralised critic would need a custom
RLModule reading ``env.state()``. Rewards are scaled by ``--reward-scale`` (they are
-$10..-$100 per step); observations are already O(1) (tariffs in $/kWh, loads per peak).
Training episodes start on a random day of the year; the final evaluation runs the mean
action on fixed days with ``powergrid.baselines.evaluate`` next to the rule-based baseline.

    pip install -e ".[rllib]"
    python examples/05_rllib_mappo.py --iterations 20
    python examples/05_rllib_mappo.py --iterations 20 --shared-policy
"""

from __future__ import annotations

import argparse
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

from powergrid.baselines import RuleBasedPolicy, evaluate
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

ENV_NAME = "multi_agent_microgrids"
EVAL_DAYS = (0, 40, 80, 121, 161, 202, 242, 283, 323, 364)


class ScaleReward(BaseParallelWrapper):
    """Multiply every reward by a constant (training only; evaluation uses raw $)."""

    def __init__(self, env: Any, scale: float) -> None:
        super().__init__(env)
        self.scale = scale

    def step(self, actions):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        return obs, {a: r * self.scale for a, r in rewards.items()}, terms, truncs, infos


class SharedSpaces(BaseParallelWrapper):
    """Give every agent the same spaces so that one RLModule can serve them all.

    Observations are zero-padded to the largest one and get a one-hot agent id appended
    (``Box(-inf, inf)``: the agents' feature bounds differ, e.g. MG1's ``gen_p`` vs MG2's
    ``pv_available`` in the same slot); actions are ``Box(-1, 1)`` of the largest size,
    each agent using its first ``action_dim`` components.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.agent_ids = list(env.possible_agents)
        self.obs_dims = {a: env.observation_space(a).shape[0] for a in self.agent_ids}
        self.act_dims = {a: env.action_space(a).shape[0] for a in self.agent_ids}
        n_obs = max(self.obs_dims.values()) + len(self.agent_ids)
        self._obs_space = spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self._act_space = spaces.Box(-1.0, 1.0, (max(self.act_dims.values()),), np.float32)

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _obs(self, obs: dict) -> dict:
        out = {}
        for a, o in obs.items():
            x = np.zeros(self._obs_space.shape, np.float32)
            x[: self.obs_dims[a]] = o
            x[x.size - len(self.agent_ids) + self.agent_ids.index(a)] = 1.0
            out[a] = x
        return out

    def reset(self, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._obs(obs), infos

    def step(self, actions):
        acts = {a: np.asarray(x)[: self.act_dims[a]] for a, x in actions.items()}
        obs, rewards, terms, truncs, infos = self.env.step(acts)
        return self._obs(obs), rewards, terms, truncs, infos


def make_env(shared: bool, config: dict | None = None) -> Any:
    env = MultiAgentMicrogrids(dict(config or {}))
    return SharedSpaces(env) if shared else env


def env_creator(env_config: dict) -> ParallelPettingZooEnv:
    config = dict(env_config)
    scale = config.pop("reward_scale", 1.0)
    shared = config.pop("shared_policy", False)
    return ParallelPettingZooEnv(ScaleReward(make_env(shared, config), scale))


def build_config(args: argparse.Namespace) -> PPOConfig:
    agents = MultiAgentMicrogrids({}).possible_agents
    if args.shared_policy:
        policies = {"shared"}

        def policy_mapping_fn(agent_id, episode, **kwargs):
            return "shared"
    else:
        policies = set(agents)

        def policy_mapping_fn(agent_id, episode, **kwargs):
            return agent_id

    return (
        PPOConfig()
        .environment(ENV_NAME, env_config={"reward_scale": args.reward_scale,
                                           "shared_policy": args.shared_policy})
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1,
                     rollout_fragment_length="auto")
        .multi_agent(policies=policies, policy_mapping_fn=policy_mapping_fn)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={p: RLModuleSpec() for p in sorted(policies)}),
            model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                            vf_share_layers=False),
        )
        .training(train_batch_size_per_learner=args.train_batch_size,
                  minibatch_size=args.minibatch_size, num_epochs=args.num_epochs,
                  lr=args.lr, gamma=0.99, lambda_=0.95, vf_clip_param=100.0)
        .debugging(seed=args.seed)
    )


def module_policy(algo: Any, shared: bool):
    """Deterministic (mean action) policy from the trained RLModules, for ``evaluate``."""

    def make_policy(env: MultiAgentMicrogrids):
        modules = {a: algo.get_module("shared" if shared else a) for a in env.possible_agents}

        def policy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            actions = {}
            for a, o in obs.items():
                module = modules[a]
                with torch.no_grad():
                    out = module.forward_inference({Columns.OBS: torch.as_tensor(o[None])})
                dist = module.get_inference_action_dist_cls().from_logits(
                    out[Columns.ACTION_DIST_INPUTS])
                act = dist.to_deterministic().sample()[0].numpy()
                actions[a] = np.clip(act, -1.0, 1.0).astype(np.float32)
            return actions

        return policy

    return make_policy


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--shared-policy", action="store_true",
                        help="one policy for all microgrids (default: one per microgrid)")
    parser.add_argument("--train-batch-size", type=int, default=2400, help="env steps")
    parser.add_argument("--minibatch-size", type=int, default=256)
    parser.add_argument("--num-epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--reward-scale", type=float, default=0.01)
    parser.add_argument("--num-env-runners", type=int, default=0,
                        help="0 = sample in the driver process")
    parser.add_argument("--eval-days", type=int, nargs="+", default=list(EVAL_DAYS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True,
             log_to_driver=False)
    register_env(ENV_NAME, env_creator)
    algo = build_config(args).build_algo()
    try:
        for it in range(1, args.iterations + 1):
            result = algo.train()
            runners = result.get("env_runners", {})
            ret = runners.get("episode_return_mean", float("nan"))
            steps = runners.get("num_env_steps_sampled_lifetime", float("nan"))
            # the return is of scaled rewards, summed over agents: cost $ = -return / scale
            print(f"iter {it:3d}  env steps {steps:>8}  episode_return_mean {ret:9.3f}  "
                  f"(= {-ret / args.reward_scale:8.1f} $/day)", flush=True)

        days = list(args.eval_days)
        rule = evaluate(lambda: MultiAgentMicrogrids({}), RuleBasedPolicy, days, seed=args.seed)
        ppo = evaluate(lambda: make_env(args.shared_policy),
                       module_policy(algo, args.shared_policy), days, seed=args.seed)
        print(f"\nevaluation over days {days} (mean episode cost, all microgrids, $/day)")
        print(f"  rule-based (P2P)      {rule['mean_cost']:9.1f}")
        print(f"  RLlib PPO ({'shared' if args.shared_policy else 'per-MG'})  "
              f"{ppo['mean_cost']:9.1f}")
        return {"rule-based": rule["mean_cost"], "ppo": ppo["mean_cost"]}
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
