"""Example 07 - single-file PPO and MAPPO (CleanRL style) on the batched VectorMicrogrids.

Modelled on CleanRL's ``ppo_continuous_action.py``: read it top to bottom. One actor-critic
is shared by all microgrids (parameter sharing); each agent's row carries a one-hot agent id.

* **Batched env.** ``VectorMicrogrids`` steps ``--num-envs`` copies of the scenario at once;
  ``AgentsAsEnvs`` presents its B envs x N agents as one gymnasium ``VectorEnv`` of B * N
  rows (SuperSuit's ``pettingzoo_env_to_vec_env`` idea: agents become sub-envs), so
  gymnasium's own vector wrappers ``NormalizeObservation`` and ``NormalizeReward`` do the
  normalisation. Why this and not the single-agent wrappers: those wrap one ``Env`` with one
  observation space, while a multi-agent batch is a dict of (B, d) arrays; once agents are
  rows, the vector wrappers see exactly what they expect. One running mean/std is shared by
  all rows (the agent id tells them apart).
* **MAPPO** (``--mappo``): decentralised actors (each sees its own row) and a centralised
  critic on the joint observation of its env (every agent's row, i.e. ``state()``) plus the
  agent id. Plain PPO's critic sees the actor's row only.
* **Cooperative reward** (``--share-reward``, default): every agent is trained on the sum of
  all microgrids' rewards, the score's objective. With selfish rewards each agent bids for
  itself and the bids fail to cross in hours where a trade would save money.
* **Residual on the rule** (``--residual``, default): the action is ``RuleBasedPolicy``'s
  action plus the learned one (clipped to [-1, 1]), and the rule's action is also an input
  feature (``--rule-features``). The actor starts at the rule (last layer ~0) and learns
  corrections, instead of rediscovering the tariff valley from noise.
* **Log-std schedule** (``--final-logstd``): the exploration noise decays linearly from
  ``init_logstd`` to ``final_logstd`` (not learned); ``--final-logstd nan`` learns it.
* Trains on the scenario's train split only (``split="train"`` is the scenario default);
  the learning curve scores the deterministic policy on every test day (never used for
  any choice during training).

    python examples/07_cleanrl_ppo.py --seed 1                   # PPO
    python examples/07_cleanrl_ppo.py --seed 1 --mappo           # MAPPO
    python examples/07_cleanrl_ppo.py --total-timesteps 20000 --out-dir /tmp/ppo  # smoke run

Writes to ``--out-dir``: ``learning_curve.csv`` (env steps, wall time, test score) and
``agent.pt`` (actor weights, observation statistics and layout: load it with
``powergrid.policies.load_policy``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers.vector import NormalizeObservation, NormalizeReward
from torch.distributions.normal import Normal

import powergrid
from powergrid.baselines import RuleBasedPolicy
from powergrid.evaluation import evaluate
from powergrid.policies.features import (
    RowLayout,
    agent_rows,
    central_state,
    rule_actions,
    split_rows,
)


@dataclass
class Args:
    scenario: str = "p2p-2mg-v1"
    """scenario id (powergrid.scenarios); training uses its train split"""
    seed: int = 1
    """seed of torch, numpy and the env resets"""
    torch_threads: int = 1
    """torch CPU threads"""
    out_dir: str = "runs/ppo"
    """where learning_curve.csv and agent.pt are written"""
    total_timesteps: int = 500_000
    """total env steps (one env step = one hour of one env copy, all agents)"""
    num_envs: int = 64
    """env copies in the VectorMicrogrids batch"""
    num_steps: int = 24
    """steps per env copy per rollout (24 = one day, so every rollout is whole episodes)"""
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 5
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = False
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden: int = 64
    """width of the two hidden layers of actor and critic"""
    init_logstd: float = -1.0
    """initial log-std of the Gaussian policy"""
    final_logstd: float = -2.5
    """log-std at the end of training, annealed linearly (nan: learn the log-std instead)"""
    mappo: bool = False
    """centralised critic on the joint observation (MAPPO) instead of the actor's row"""
    share_reward: bool = True
    """train every agent on the sum of all agents' rewards (cooperative)"""
    residual: bool = True
    """action = RuleBasedPolicy action + learned action"""
    rule_features: bool = True
    """append the rule's action to each agent's observation row"""
    eval_every: int = 10
    """iterations between two test-split evaluations of the deterministic policy"""
    eval_seed: int = 0
    """seed of the evaluation episodes (load noise), as the evaluation runner's default"""
    test_days: tuple[int, ...] = ()
    """score on these test days only (default: every test day of the scenario)"""


class AgentsAsEnvs(gym.vector.VectorEnv):
    """``VectorMicrogrids`` (B envs, N agents) as a gymnasium VectorEnv of B * N rows.

    Row ``b * N + i`` is agent ``i`` of env ``b`` (``powergrid.policies.features``). Episodes
    have a fixed length, so all envs end together and the loop calls ``reset()`` then: the
    NEXT_STEP autoreset (declared, as gymnasium's wrappers require) never happens. The end of a day is terminal, since the stored energy is
    valued there (``storage_terminal_price``) and the day is the whole task.
    ``infos["team_cost"]`` is each env's summed cost of the step (B,).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, scenario: str, num_envs: int, args: Args, **overrides) -> None:
        self.venv = powergrid.scenarios.make_vector(scenario, num_envs, **overrides)
        self.rule = RuleBasedPolicy(powergrid.make(scenario, **overrides))
        self.layout = RowLayout.of(self.venv, args.rule_features)
        self.residual, self.share_reward = args.residual, args.share_reward
        self.num_envs = num_envs * self.layout.n_agents
        self.single_observation_space = Box(-np.inf, np.inf, (self.layout.row_dim,), np.float32)
        self.single_action_space = Box(-1.0, 1.0, (self.layout.act_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rule_action = None

    def _rows(self, obs):
        self._rule_action = rule_actions(self.rule, self.layout, obs)
        return agent_rows(self.layout, obs, self._rule_action)

    def reset(self, *, seed=None, options=None):
        obs, _ = self.venv.reset(seed=seed, options=options)
        return self._rows(obs), {}

    def step(self, actions):
        actions = np.asarray(actions, np.float32)
        if self.residual:
            actions = actions + self._rule_action
        obs, rew, term, trunc, _ = self.venv.step(split_rows(self.layout, np.clip(actions, -1, 1)))
        agents = self.layout.agents
        reward = np.stack([rew[a] for a in agents], axis=1)  # (B, N)
        team_cost = -reward.sum(axis=1)
        if self.share_reward:
            reward = np.repeat(-team_cost[:, None], len(agents), axis=1)
        done = np.stack([term[a] | trunc[a] for a in agents], axis=1).reshape(-1)
        return (self._rows(obs), reward.reshape(-1), done, np.zeros_like(done),
                {"team_cost": team_cost})


def make_env(args: Args, num_envs: int, **overrides) -> gym.vector.VectorEnv:
    """Batched env, agents as rows, with gymnasium's observation and reward normalisation."""
    env = NormalizeObservation(AgentsAsEnvs(args.scenario, num_envs, args, **overrides))
    return NormalizeReward(env, gamma=args.gamma)


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Gaussian actor on the agent's row; critic on the row (PPO) or the joint obs (MAPPO)."""

    def __init__(self, obs_dim: int, critic_dim: int, act_dim: int, hidden: int,
                 init_logstd: float, learn_logstd: bool) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(critic_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, act_dim), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), init_logstd),
                                         requires_grad=learn_logstd)

    def get_value(self, critic_x: torch.Tensor) -> torch.Tensor:
        return self.critic(critic_x)

    def get_action_and_value(self, x, critic_x, action=None):
        action_mean = self.actor_mean(x)
        probs = Normal(action_mean, torch.exp(self.actor_logstd.expand_as(action_mean)))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(critic_x)


def critic_input(args: Args, layout: RowLayout, rows: np.ndarray) -> torch.Tensor:
    """The critic's rows: the actor's own row (PPO) or the env's joint observation (MAPPO)."""
    return torch.as_tensor(central_state(layout, rows) if args.mappo else rows)


class TestScore:
    """Score of the deterministic policy on every test day (one batched episode per call)."""

    def __init__(self, args: Args, obs_rms) -> None:
        scenario = powergrid.scenarios.get(args.scenario)
        self.days = np.array(args.test_days or scenario.test_days)
        # the score's references (no-trade rule = 0, optimum = 1), from the evaluation runner
        rule = evaluate("rule", args.scenario, "test", seeds=(args.eval_seed,),
                        days=self.days.tolist(), progress=False)
        self.c_ref = rule.per_episode["cost_ref"].to_numpy()
        self.c_opt = rule.per_episode["cost_opt"].to_numpy()
        self.rule_score = float(rule.mean["score"])
        self.env = NormalizeObservation(AgentsAsEnvs(args.scenario, len(self.days), args))
        self.env.update_running_mean = False
        self.env.obs_rms = obs_rms  # the training statistics, frozen here
        self.seed = args.eval_seed

    def __call__(self, agent: Agent) -> np.ndarray:
        obs, _ = self.env.reset(seed=[self.seed] * len(self.days),
                                options={"start_day": self.days, "split": "test"})
        cost = np.zeros(len(self.days))
        for _ in range(self.env.env.venv.config.max_episode_steps):
            with torch.no_grad():
                act = agent.actor_mean(torch.as_tensor(obs)).numpy()
            obs, _, _, _, info = self.env.step(act)
            cost += info["team_cost"]
        return (self.c_ref - cost) / (self.c_ref - self.c_opt)


def main(args: Args) -> dict[str, float]:
    os.makedirs(args.out_dir, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)

    envs = make_env(args, args.num_envs)
    layout = envs.env.env.layout
    n_rows = envs.num_envs  # B * N
    obs_dim, act_dim = layout.row_dim, layout.act_dim
    critic_dim = (obs_dim + 1) * layout.n_agents if args.mappo else obs_dim
    rollout_steps = args.num_steps * args.num_envs  # env steps per iteration
    batch_size = args.num_steps * n_rows
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // rollout_steps)
    learn_logstd = math.isnan(args.final_logstd)

    agent = Agent(obs_dim, critic_dim, act_dim, args.hidden, args.init_logstd, learn_logstd)
    optimizer = optim.Adam([p for p in agent.parameters() if p.requires_grad],
                           lr=args.learning_rate, eps=1e-5)
    test_score = TestScore(args, envs.env.obs_rms)

    obs = torch.zeros((args.num_steps, n_rows, obs_dim))
    critic_obs = torch.zeros((args.num_steps, n_rows, critic_dim))
    actions = torch.zeros((args.num_steps, n_rows, act_dim))
    logprobs = torch.zeros((args.num_steps, n_rows))
    rewards = torch.zeros((args.num_steps, n_rows))
    dones = torch.zeros((args.num_steps, n_rows))
    values = torch.zeros((args.num_steps, n_rows))

    global_step = 0
    start_time, start_cpu = time.time(), time.process_time()
    next_obs_np, _ = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs_np)
    next_critic = critic_input(args, layout, next_obs_np)
    next_done = torch.zeros(n_rows)
    day_cost, finished = np.zeros(args.num_envs), []
    curve: list[dict[str, float]] = []

    def log_point(iteration: int) -> None:
        scores = test_score(agent)
        curve.append({"iteration": iteration, "env_steps": global_step,
                      "wall_s": round(time.time() - start_time, 1),
                      "cpu_s": round(time.process_time() - start_cpu, 1),
                      "test_score": float(scores.mean()), "test_score_std": float(scores.std()),
                      "train_team_cost": float(np.mean(finished)) if finished else float("nan"),
                      "logstd": float(agent.actor_logstd.mean())})
        finished.clear()
        print(f"it {iteration:4d} steps {global_step:8d} {curve[-1]['wall_s']:7.1f}s "
              f"test score {scores.mean():.3f} train cost {curve[-1]['train_team_cost']:.0f}",
              flush=True)

    log_point(0)
    for iteration in range(1, num_iterations + 1):
        frac = 1.0 - (iteration - 1.0) / num_iterations
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate
        if not learn_logstd:  # linear log-std schedule
            agent.actor_logstd.data.fill_(args.final_logstd + frac * (args.init_logstd
                                                                      - args.final_logstd))

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], critic_obs[step], dones[step] = next_obs, next_critic, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_critic)
                values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob

            next_obs_np, reward, terminations, truncations, info = envs.step(action.numpy())
            day_cost += info["team_cost"]
            next_done_np = np.logical_or(terminations, truncations)
            if next_done_np.any():  # lockstep: every env ends its day on the same step
                finished.extend(day_cost.tolist())
                day_cost[:] = 0.0
                next_obs_np, _ = envs.reset()
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = torch.as_tensor(next_obs_np)
            next_critic = critic_input(args, layout, next_obs_np)
            next_done = torch.as_tensor(next_done_np, dtype=torch.float32)

        # ---- GAE (an episode's end is terminal: see AgentsAsEnvs)
        with torch.no_grad():
            next_value = agent.get_value(next_critic).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = (
                    delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam)
            returns = advantages + values

        # ---- flatten the batch
        b_obs = obs.reshape((-1, obs_dim))
        b_critic = critic_obs.reshape((-1, critic_dim))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1, act_dim))
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # ---- optimise the policy and value network
        b_inds = np.arange(batch_size)
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start:start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_critic[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8)

                # clipped surrogate objective
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # value loss (optionally clipped)
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef)
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"non-finite loss at iteration {iteration}: {loss.item()}")
        if iteration % args.eval_every == 0 or iteration == num_iterations:
            log_point(iteration)

    # ---- outputs: learning curve CSV and the checkpoint the policy loader reads
    with open(os.path.join(args.out_dir, "learning_curve.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    obs_rms = envs.env.obs_rms
    torch.save({"actor": agent.actor_mean.state_dict(),
                "obs_mean": torch.as_tensor(obs_rms.mean), "obs_var": torch.as_tensor(obs_rms.var),
                "layout": asdict(layout), "residual": args.residual, "scenario": args.scenario,
                "algorithm": "MAPPO" if args.mappo else "PPO", "args": asdict(args)},
               os.path.join(args.out_dir, "agent.pt"))
    summary = {"test_score": curve[-1]["test_score"], "rule_score": test_score.rule_score,
               "wall_s": curve[-1]["wall_s"], "cpu_s": curve[-1]["cpu_s"],
               "env_steps": global_step}
    with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args))
