"""Example 07 - single-file PPO (CleanRL style) with parameter sharing on MultiAgentMicrogrids.

Modelled on CleanRL's ``ppo_continuous_action.py``: read it top to bottom. One actor-critic
network is shared by all microgrids; each agent's observation gets a one-hot agent id
appended so the shared policy can still act differently per microgrid. Observations of
different sizes are zero-padded to the largest one and each agent uses the first
``action_dim`` components of the shared action head (they are equal for the default config).

Details that matter for this environment (rewards are -$10..-$100 per step per agent):
  * observation normalisation: running mean/std per agent, frozen for evaluation;
  * reward scaling: rewards are divided by the running std of the discounted return;
  * the env is a registered scenario (``--scenario``, ``powergrid.make``): training resets
    draw only its train days; the final evaluation runs ``powergrid.evaluation.evaluate`` on
    its held-out test days and reports cost and score (0 = no-trade, 1 = optimum).

Vectorisation is a plain Python loop over ``--num-envs`` env copies (every episode is exactly
``max_episode_steps`` long, so all copies reset together); no SuperSuit needed.

    python examples/07_cleanrl_ppo.py --scenario p2p-2mg-v1 --total-timesteps 150000
    python examples/07_cleanrl_ppo.py --total-timesteps 2000 --out-dir /tmp/ppo  # smoke run
    python examples/07_cleanrl_ppo.py --load runs/ppo/agent.pt   # evaluate a saved policy

Writes to ``--out-dir``: ``learning_curve.csv`` / ``learning_curve.png`` (global env step vs
mean episode cost, all microgrids summed), ``agent.pt`` (weights + normaliser stats +
scenario) and ``evaluation.csv`` (the PPO policy's per-day KPI table); then prints the
mean cost and score of random / no-trade / rule-based / PPO on the scenario's test days.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.optim as optim  # noqa: E402
import tyro  # noqa: E402
from torch.distributions.normal import Normal  # noqa: E402
from tqdm import tqdm  # noqa: E402

import powergrid  # noqa: E402
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids  # noqa: E402
from powergrid.evaluation import evaluate  # noqa: E402

BASELINES = ("random", "no-trade", "rule")


@dataclass
class Args:
    scenario: str = "p2p-2mg-v1"
    """scenario id (powergrid.scenarios): training uses its train days, evaluation its test days"""
    load: str | None = None
    """a saved agent.pt: skip training and evaluate it (on the scenario it was trained on)"""
    seed: int = 1
    """seed of the experiment (torch, numpy, env resets)"""
    torch_threads: int = 1
    """torch CPU threads (1-2)"""
    out_dir: str = "runs/ppo"
    """where the learning curve CSV/PNG and the model are written"""
    total_timesteps: int = 200_000
    """total env steps (one step = one hour for all microgrids) over all env copies"""
    num_envs: int = 8
    """number of env copies stepped in lockstep"""
    num_steps: int = 96
    """env steps per copy per rollout (96 = 4 days of 24 h)"""
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 10
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden: int = 64
    """width of the two hidden layers of actor and critic"""
    init_logstd: float = 0.0
    """initial log-std of the Gaussian policy (actions live in [-1, 1]: 0 explores widely)"""
    eval_days: tuple[int, ...] | None = None
    """test days for the final deterministic evaluation (default: all of the scenario's)"""
    eval_seed: int = 0
    """seed of the evaluation episodes (load noise, random baseline)"""
    eval_baselines: bool = True
    """also evaluate random / no-trade / rule-based for comparison"""
    progress: bool = True
    """show a tqdm progress bar"""


def make_env(scenario: str) -> MultiAgentMicrogrids:
    """The scenario's env; its resets draw train days only (``split="train"``)."""
    return powergrid.make(scenario, split="train")


# ------------------------------------------------------------------ normalisation helpers
class RunningMeanStd:
    """Running mean/variance (parallel algorithm of Chan et al.), as in gymnasium's wrappers."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        b_mean, b_var, b_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_count
        self.mean = self.mean + delta * b_count / tot
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / tot
        self.var = m2 / tot
        self.count = tot


def normalize_obs(rms: RunningMeanStd, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
    return np.clip((x - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip)


# ------------------------------------------------------------------ agent
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Gaussian policy with a state-independent log-std, and a separate value network."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64,
                 init_logstd: float = 0.0) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, act_dim), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), init_logstd))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        action_mean = self.actor_mean(x)
        action_std = torch.exp(self.actor_logstd.expand_as(action_mean))
        probs = Normal(action_mean, action_std)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


# ------------------------------------------------------------------ multi-agent <-> flat batch
class SharedPolicyAdapter:
    """Turns per-agent observations into rows of one shared network (pad + one-hot id)."""

    def __init__(self, env: MultiAgentMicrogrids) -> None:
        self.agents = list(env.possible_agents)
        self.obs_dims = [env.observation_space(a).shape[0] for a in self.agents]
        self.act_dims = [env.action_space(a).shape[0] for a in self.agents]
        self.pad_obs_dim, self.pad_act_dim = max(self.obs_dims), max(self.act_dims)
        self.obs_rms = [RunningMeanStd((self.pad_obs_dim,)) for _ in self.agents]
        self.net_obs_dim = self.pad_obs_dim + len(self.agents)  # + one-hot agent id

    def rows(self, obs: dict[str, np.ndarray], update_stats: bool) -> np.ndarray:
        """(n_agents, net_obs_dim) normalised, padded observations with the agent id."""
        out = np.zeros((len(self.agents), self.net_obs_dim), np.float32)
        for i, a in enumerate(self.agents):
            padded = np.zeros(self.pad_obs_dim)
            padded[: self.obs_dims[i]] = obs[a]
            if update_stats:
                self.obs_rms[i].update(padded[None])
            out[i, : self.pad_obs_dim] = normalize_obs(self.obs_rms[i], padded)
            out[i, self.pad_obs_dim + i] = 1.0
        return out

    def actions(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Shared-head actions -> per-agent actions in [-1, 1], cut to each agent's size."""
        clipped = np.clip(rows, -1.0, 1.0).astype(np.float32)
        return {a: clipped[i, : self.act_dims[i]] for i, a in enumerate(self.agents)}


def ppo_policy(agent: Agent, adapter: SharedPolicyAdapter):
    """A factory env -> deterministic (mean action) policy, for ``powergrid.evaluation``."""

    def make_policy(env: MultiAgentMicrogrids):
        def policy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            x = torch.as_tensor(adapter.rows(obs, update_stats=False))
            with torch.no_grad():
                mean = agent.actor_mean(x).numpy()
            return adapter.actions(mean)

        return policy

    make_policy.__name__ = "ppo"  # the policy's name in evaluation tables
    return make_policy


def load_agent(path: str) -> tuple[Agent, SharedPolicyAdapter, str]:
    """A saved ``agent.pt``: the network, its frozen normaliser and its scenario id."""
    saved = torch.load(path, weights_only=False)
    a = saved["args"]
    scenario = a.get("scenario", "p2p-2mg-v1")
    adapter = SharedPolicyAdapter(make_env(scenario))
    if adapter.agents != list(saved["agents"]):
        raise ValueError(f"{path}: saved agents {saved['agents']} differ from scenario "
                         f"{scenario!r} agents {adapter.agents}")
    for rms, (mean, var, count) in zip(adapter.obs_rms, saved["obs_rms"]):
        rms.mean, rms.var, rms.count = mean, var, count
    agent = Agent(adapter.net_obs_dim, adapter.pad_act_dim, a["hidden"], a["init_logstd"])
    agent.load_state_dict(saved["agent"])
    return agent, adapter, scenario


def evaluate_policy(args: Args, agent: Agent, adapter: SharedPolicyAdapter,
                    scenario: str) -> dict[str, dict[str, float]]:
    """Mean cost and score on the scenario's test days: the baselines, then PPO."""
    kwargs = dict(split="test", seeds=(args.eval_seed,), days=args.eval_days,
                  progress=args.progress)
    names = BASELINES if args.eval_baselines else ()
    results = {name: evaluate(name, scenario, **kwargs) for name in names}
    results["ppo"] = evaluate(ppo_policy(agent, adapter), scenario, **kwargs)
    os.makedirs(args.out_dir, exist_ok=True)
    results["ppo"].to_csv(os.path.join(args.out_dir, "evaluation.csv"))
    n = len(results["ppo"].per_episode)
    print(f"\n{scenario}, {n} test days, seed {args.eval_seed} "
          f"(all microgrids summed, $/day; score 0 = no-trade, 1 = optimum)")
    print(f"{'policy':<12}{'mean cost':>12}{'mean score':>12}")
    for name, res in results.items():
        print(f"{name:<12}{res.mean['cost']:>12.1f}{res.mean['score']:>12.3f}")
    return {name: {"cost": float(r.mean["cost"]), "score": float(r.mean["score"])}
            for name, r in results.items()}


def main(args: Args) -> dict[str, dict[str, float]]:
    if args.load:
        agent, adapter, scenario = load_agent(args.load)
        return evaluate_policy(args, agent, adapter, scenario)
    os.makedirs(args.out_dir, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)

    # ---- env setup: K copies, N agents each -> K*N rows per step for the shared network
    envs = [make_env(args.scenario) for _ in range(args.num_envs)]
    adapter = SharedPolicyAdapter(envs[0])
    n_agents = len(adapter.agents)
    n_rows = args.num_envs * n_agents
    batch_size = args.num_steps * n_rows
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // (args.num_steps * args.num_envs))

    agent = Agent(adapter.net_obs_dim, adapter.pad_act_dim, args.hidden, args.init_logstd)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # ---- rollout storage
    obs = torch.zeros((args.num_steps, n_rows, adapter.net_obs_dim))
    actions = torch.zeros((args.num_steps, n_rows, adapter.pad_act_dim))
    logprobs = torch.zeros((args.num_steps, n_rows))
    rewards = torch.zeros((args.num_steps, n_rows))
    dones = torch.zeros((args.num_steps, n_rows))
    values = torch.zeros((args.num_steps, n_rows))

    # ---- reward scaling: divide by the running std of the discounted return of each row
    return_rms = RunningMeanStd(())
    discounted_return = np.zeros(n_rows)

    def reset_all() -> np.ndarray:
        rows = []
        for env in envs:
            # the env draws a train day: a held-out test day is never seen in training
            o, _ = env.reset(seed=int(rng.integers(2**31)))
            rows.append(adapter.rows(o, update_stats=True))
        return np.concatenate(rows)

    global_step = 0
    start_time = time.time()
    next_obs = torch.as_tensor(reset_all())
    next_done = torch.zeros(n_rows)
    episode_costs = np.zeros(args.num_envs)
    curve: list[dict[str, float]] = []
    finished: list[float] = []
    pbar = tqdm(total=num_iterations * args.num_steps * args.num_envs, disable=not args.progress,
                unit="step", desc="PPO")

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # step every env copy with its agents' rows of the batch
            act_np = action.numpy()
            raw_reward = np.zeros(n_rows)
            next_rows = []
            for k, env in enumerate(envs):
                acts = adapter.actions(act_np[k * n_agents:(k + 1) * n_agents])
                o, r, _, _, _ = env.step(acts)
                raw_reward[k * n_agents:(k + 1) * n_agents] = [r[a] for a in adapter.agents]
                episode_costs[k] -= sum(r.values())
                if o:
                    next_rows.append(adapter.rows(o, update_stats=True))
            episode_over = not envs[0].agents
            if episode_over:  # fixed-length episodes: every copy ends together
                finished.extend(episode_costs.tolist())
                episode_costs[:] = 0.0
                next_rows = [reset_all()]

            # reward scaling (visible): r / std(discounted return), return reset at episode end
            discounted_return = discounted_return * args.gamma + raw_reward
            return_rms.update(discounted_return)
            scaled = raw_reward / np.sqrt(return_rms.var + 1e-8)
            if episode_over:
                discounted_return[:] = 0.0
            rewards[step] = torch.as_tensor(np.clip(scaled, -10, 10), dtype=torch.float32)
            next_obs = torch.as_tensor(np.concatenate(next_rows))
            next_done = torch.full((n_rows,), float(episode_over))
        pbar.update(args.num_steps * args.num_envs)

        # ---- GAE (the day is the whole task: the end of an episode is terminal)
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
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
        b_obs = obs.reshape((-1, adapter.net_obs_dim))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1, adapter.pad_act_dim))
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # ---- optimise the policy and value network
        b_inds = np.arange(batch_size)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start:start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

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
        mean_cost = float(np.mean(finished)) if finished else float("nan")
        curve.append({"global_step": global_step, "mean_episode_cost": mean_cost,
                      "episodes": len(finished), "loss": loss.item(),
                      "policy_loss": pg_loss.item(), "value_loss": v_loss.item(),
                      "entropy": entropy_loss.item(), "approx_kl": approx_kl.item(),
                      "clipfrac": float(np.mean(clipfracs)),
                      "sps": int(global_step / (time.time() - start_time))})
        finished = []
        pbar.set_postfix(cost=f"{mean_cost:.0f}", loss=f"{loss.item():.3f}")
    pbar.close()

    # ---- outputs: learning curve CSV, model
    csv_path = os.path.join(args.out_dir, "learning_curve.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    torch.save({"agent": agent.state_dict(), "args": vars(args),
                "obs_rms": [(r.mean, r.var, r.count) for r in adapter.obs_rms],
                "agents": adapter.agents}, os.path.join(args.out_dir, "agent.pt"))

    # ---- deterministic evaluation on the held-out test days against the baselines
    results = evaluate_policy(args, agent, adapter, args.scenario)

    # ---- learning curve PNG with the baselines for reference
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [c["global_step"] for c in curve]
    ax.plot(steps, [c["mean_episode_cost"] for c in curve], label="PPO (training episodes)")
    baselines = [(n, r) for n, r in results.items() if n != "ppo"]
    for (name, res), style in zip(baselines, (":", "--", "-.")):
        ax.axhline(res["cost"], color="gray", linestyle=style, label=f"{name} (test days)")
    ax.set_xlabel("global env step")
    ax.set_ylabel("mean episode cost [$ / day]")
    ax.set_title(f"PPO, parameter sharing, {args.scenario}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "learning_curve.png"), dpi=120)
    plt.close(fig)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
