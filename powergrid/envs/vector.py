"""VectorMicrogrids: B copies of MultiAgentMicrogrids stepped together through the core."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from heron.validation import Range
from powergrid.core.infos import FlatRenderer, microgrid_schema, operator_schema
from powergrid.core.rows import RowLayout, RowTable
from powergrid.core.step import Simulation, StepOutput
from powergrid.envs.actions import action_array, clip_batch
from powergrid.envs.config import EnvConfig
from powergrid.envs.coordination import DSO
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.options import check_seeds, reset_options
from powergrid.envs.spaces import SideBySide

# what the batch does not model (each raises ValueError naming it)
UNSUPPORTED = ("render_mode",)
MAX_SERIES_BYTES = 4 * 2**30


class VectorMicrogrids:
    """``num_envs`` independent MultiAgentMicrogrids envs as one batched, parallel env.

    Why: RL needs many env-steps per second; stepping B scalar envs costs B Python passes
    through devices, market and power flow, while here each stage of the one simulation
    core (``powergrid.core.step``) is one numpy (or numba) pass over the batch; stages
    that cannot be batched (custom devices, protocols, the broker, pandapower) run per
    row through the scalar env's own objects. Env ``i`` behaves exactly like ``MultiAgentMicrogrids(config)``
    reset with ``seed + i`` and fed the same actions (tested to 1e-9; 1e-6 for power-flow
    derived values).

    API (PettingZoo-parallel-like, every value batched along axis 0):

    * ``possible_agents`` / ``agents``; ``single_observation_space(agent)`` and
      ``single_action_space(agent)`` are the scalar env's Boxes; ``obs_labels``. As
      Gymnasium vector envs, per agent: ``single_observation_spaces`` /
      ``single_action_spaces`` (those Boxes) and ``observation_spaces`` /
      ``action_spaces`` (batched, leading axis B).
    * ``reset(seed=None, options=None) -> (obs, infos)``: ``obs[agent]`` is a float32
      ``(B, obs_dim)`` array; ``seed`` an int (env i gets ``seed + i``) or B ints;
      ``options={"start_day": int | (B,) ints}`` as in the scalar env;
      ``options={"reset_mask": (B,) bool}`` resets only those envs (the others keep
      their episodes; their obs are returned unchanged).
    * ``step(actions) -> (obs, rewards, terminateds, truncateds, infos)`` with
      ``actions[agent]`` of shape ``(B, act_dim)``; rewards ``(B,)`` float, terminateds /
      truncateds ``(B,)`` bool; ``infos[agent]`` a dict of ``(B,)`` arrays: ``costs``
      (every term and ``total``), ``grid_import_kwh``, ``grid_export_kwh``,
      ``bought_kwh``, ``sold_kwh``, ``net_kw``, ``load_kw``, ``clearing_price`` (NaN when
      nothing cleared), ``pf_converged``, ``v_min_pu``, ``v_max_pu``,
      ``voltage_violation_pu``, ``line_loading_max_pct``, ``pcc_loading_pct``,
      ``feeder_v_min_pu``, ``feeder_v_max_pu``, ``pcc_loading_max_pct``, ``soc_violation``,
      ``action_clipped``, ``device_limited``, ``upstream_import_kw``,
      ``network_losses_kw``, ``autoreset``; with ``network_costs`` also
      ``costs["network_losses"]``, ``costs["network_violation"]``,
      ``network_losses_dso_kw`` and ``network_violation_dso``; with
      ``market_timing="ahead"`` also ``costs["imbalance"]``, ``shortfall_kwh`` and
      ``excess_kwh`` (the ahead market's stage, ``powergrid.core.ahead``). Bad shapes, NaN/inf, missing or unknown
      agents raise ``ValueError`` naming the agent.

    Autoreset (Gymnasium ``AutoresetMode.NEXT_STEP``, the default of gymnasium vector
    envs): the step on which an episode truncates returns that episode's final obs and
    ``truncateds = True``. The next ``step`` ignores the actions of those envs, resets them
    and returns their first obs with reward 0, terminated/truncated False and
    ``infos[agent]["autoreset"] = True`` (cost/market infos are 0 there). Episodes have a
    fixed length; envs reset through ``reset_mask`` run out of phase with the others.

    A failed power flow follows the scalar env's rule (``powergrid.envs.safety``) per
    row: same penalty, collapse-state ``v_min_pu``/``v_max_pu``, losses and upstream
    import, never the solver's iterate.

    Scope: every configuration of the scalar env except ``UNSUPPORTED`` (which raises
    ``ValueError`` naming it). With a learning operator (``PriceSignalProtocol(mode=
    "agent")``) ``"DSO"`` is one more agent, as in the scalar env.
    """

    metadata = {"name": "vector_multi_agent_microgrids_v0",
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, config: Mapping[str, Any] | EnvConfig | None = None):
        if Range(1, integer=True).coerce(num_envs) is None:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        num_envs = int(num_envs)  # numpy integers too
        cfg = EnvConfig.from_dict(config)
        if cfg.render_mode is not None:
            raise ValueError(f"VectorMicrogrids does not support render_mode="
                             f"{cfg.render_mode!r} (unsupported: {UNSUPPORTED}); render a "
                             "MultiAgentMicrogrids instead")
        # Episode series hold ~(3 N + 6) float64 per env and step: refuse what cannot fit.
        series_bytes = num_envs * (cfg.max_episode_steps + 1) * (3 * len(cfg.microgrids) + 6) * 8
        if series_bytes > MAX_SERIES_BYTES:
            raise ValueError(f"num_envs={num_envs} x max_episode_steps={cfg.max_episode_steps} "
                             f"needs {series_bytes / 2**30:.1f} GiB of episode series (limit "
                             f"{MAX_SERIES_BYTES / 2**30:.0f} GiB): use fewer envs or shorter "
                             "episodes")
        # The scalar env is the single source of spaces, network, protocol and tariffs.
        tpl = MultiAgentMicrogrids(cfg)
        self.num_envs = num_envs
        self.config = cfg
        self.profiles = tpl.profiles
        self.possible_agents = list(tpl.possible_agents)
        self.agents = list(self.possible_agents)
        self.microgrid_agents = tpl.microgrid_agents
        self.obs_labels = dict(tpl.obs_labels)
        self.action_labels = dict(tpl.action_labels)
        self._obs_spaces, self._act_spaces = tpl.observation_spaces, tpl.action_spaces
        # Gymnasium vector conventions, per agent: the scalar env's spaces and batched ones
        self.single_observation_spaces = dict(self._obs_spaces)
        self.single_action_spaces = dict(self._act_spaces)
        self.observation_spaces = {a: batch_space(sp, num_envs)
                                   for a, sp in self._obs_spaces.items()}
        self.action_spaces = {a: batch_space(sp, num_envs) for a, sp in self._act_spaces.items()}
        self.sim = Simulation(tpl, num_envs)
        # every agent's observation checked and clipped in one pass, in the core's layout
        self._obs_box = SideBySide.of([self._obs_spaces[a] for a in self.possible_agents])
        self._obs_box.check_layout(self.sim.obs_offsets)
        # the flat rows of the info schema (powergrid.core.infos) the batch reports
        self._infos = FlatRenderer(microgrid_schema(
            (), network_costs=self.sim.network_costs is not None, ahead=self.sim.ahead is not None))
        self._dso_infos = FlatRenderer(operator_schema())
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._days_split = tpl.days_split
        self._split = cfg.split
        self._started = False
        # the generated renderer of the last output layout: (layout, render, shared names)
        self._render_plan: tuple[RowLayout, Callable, tuple[str, ...]] | None = None
        self._agent_set = set(self.possible_agents)

    # ------------------------------------------------------------------ API
    def single_observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def single_action_space(self, agent: str) -> spaces.Box:
        return self._act_spaces[agent]

    def reset(self, seed: int | Sequence[int] | None = None, options: dict | None = None):
        B = self.num_envs
        # Validate everything first: a rejected reset must leave the envs untouched.
        seeds = check_seeds(seed, B)
        opts = reset_options(options, B)
        mask = opts.get("reset_mask", np.ones(B, bool))
        if not self._started and not mask.all():
            raise ValueError("reset option 'reset_mask': the first reset() must reset every "
                             "env (there is no episode to keep yet)")
        splits = opts.get("split", [self.config.split] * B)
        if len(set(splits)) > 1:
            raise ValueError(f"reset option 'split' must be the same for every env, got {splits}")
        days = opts.get("start_day", [self.config.start_day] * B)
        if None in days and any(d is not None for d in days):
            raise ValueError("reset option 'start_day' must give a day for every env or for "
                             "none")
        start = ([None] * B if None in days
                 else self._days_split.check_many(days, splits[0], "reset option 'start_day'"))
        if seeds is not None:
            for i in np.flatnonzero(mask):
                self._rngs[i] = np.random.default_rng(seeds[i])
            for i, a in enumerate(self.possible_agents):
                self._act_spaces[a].seed(seeds[0] + i)
                self._obs_spaces[a].seed(seeds[0] + i)
        self._split = splits[0]
        self.sim.reset_rows(mask, self._rngs, list(start), self._split,
                            [None] * B if seeds is None else seeds)
        self._started = True
        start_day = self.sim.state.start_day.copy()
        return self._observations(), {a: {"start_day": start_day.copy()}
                                      for a in self.possible_agents}

    def step(self, actions: Mapping[str, Any]):
        if not self._started:
            raise RuntimeError("step() called before reset()")
        acts, clipped = self._validate_actions(actions)
        sim, B, N = self.sim, self.num_envs, len(self.microgrid_agents)
        auto = sim.state.needs_reset.copy()  # NEXT_STEP autoreset: these rows restart now
        n_auto = int(np.count_nonzero(auto))
        live = ~auto
        out = sim.step(acts, live) if n_auto < B else None
        done = live & (sim.state.t >= self.config.max_episode_steps)
        idle = auto if n_auto else None
        if n_auto:
            day = self.config.start_day
            sim.reset_rows(auto, self._rngs, [day] * B, self._split, [None] * B)
        start_day = sim.state.start_day.copy()
        rewards, infos = {}, {}
        render = self._renderer(out, idle, clipped, auto, start_day)
        reward_rows = np.zeros((N, B)) if out is None else out.rewards.T.copy()
        for i, a in enumerate(self.microgrid_agents):
            infos[a] = render(i)
            rewards[a] = reward_rows[i] if idle is None else np.where(auto, 0.0, reward_rows[i])
        if sim.has_dso:
            dso = (out.dso_info if out is not None
                   else {f.flat: np.zeros(B) for f in self._dso_infos.fields})
            infos[DSO] = {**self._dso_infos.render(dso, auto), "autoreset": auto.copy(),
                          "start_day": start_day}
            rewards[DSO] = (np.where(auto, 0.0, out.dso_reward) if out is not None
                            else np.zeros(B))
        return (self._observations(), rewards,
                {a: np.zeros(B, bool) for a in self.possible_agents},
                {a: done.copy() for a in self.possible_agents}, infos)

    def _renderer(self, out: StepOutput | None, idle: np.ndarray | None, clipped: np.ndarray,
                  auto: np.ndarray, start_day: np.ndarray) -> Callable[[int], dict[str, Any]]:
        """Agent ``i``'s flat infos of this step (``clipped``: (agents, B) action flags),
        then ``autoreset`` (its own copy of ``auto``) and ``start_day``. Per-agent values
        are (B,) row views of an (N, B) copy of each of the core's output arrays
        (:meth:`RowTable.swapped`); without idle rows through a function generated once
        per output layout."""
        N = len(self.microgrid_agents)
        if out is None or idle is not None:  # autoreset rows: the generic rendering
            if out is None:  # every row autoreset: idle values only
                rows = dict.fromkeys((f.flat for f in self._infos.fields),
                                     np.zeros((N, self.num_envs)))
                shared: Mapping[str, np.ndarray] = {}
            else:
                rows, shared = dict(RowTable.of(out.per_agent).swapped().items()), out.shared
            rows["action_clipped"] = clipped
            return lambda i: {**self._infos.render_row(rows, shared, i, idle),
                              "autoreset": auto.copy(), "start_day": start_day}
        per = RowTable.of(out.per_agent)
        layout, plan = per.layout, self._render_plan
        if plan is None or (plan[0] is not layout and plan[0].where != layout.where):
            names = tuple(f.flat for f in self._infos.fields
                          if f.flat not in layout.where and f.flat != "action_clipped")
            plan = self._render_plan = (layout, self._infos.compile(
                layout, ("action_clipped", "autoreset"), (*names, "start_day"),
                ("autoreset", "start_day")), names)
        _, render, names = plan
        P = per.swapped().arrays
        X = (clipped, np.repeat(auto[None], N, axis=0))  # each agent its own autoreset row
        S = [*(out.shared[n] for n in names), start_day]
        return lambda i: render(P, X, S, i)

    def close(self) -> None:
        for c in self.sim.coords or ():
            c.close()  # distributed mode over ZeroMQ: stop each row's endpoint processes

    # ------------------------------------------------------------------ internals
    def _validate_actions(self, actions: Mapping[str, Any]) -> tuple[list[np.ndarray], np.ndarray]:
        """The actions clipped to [-1, 1] (new float64 arrays, possible_agents order) and
        (agents, B) flags of the rows clipped."""
        if not (type(actions) is dict and actions.keys() == self._agent_set):
            self._check_agents(actions)
        out, clipped = [], np.zeros((len(self.possible_agents), self.num_envs), bool)
        for i, a in enumerate(self.possible_agents):
            arr = action_array(a, actions[a], (self.num_envs, *self._act_spaces[a].shape))
            c = np.empty_like(arr)
            if clip_batch(arr, c, clipped[i]) >= 0:
                bad = np.flatnonzero(~np.isfinite(arr).all(1)).tolist()
                raise ValueError(f"action for {a!r} contains NaN or inf (envs {bad[:10]})")
            out.append(c)
        return out, clipped

    def _check_agents(self, actions: Any) -> None:
        """A mapping of exactly the possible agents, else a ValueError naming the mistake."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict {{agent: (B, act_dim) array}}, got "
                             f"{type(actions).__name__}")
        unknown = [a for a in actions if a not in self.possible_agents]
        missing = [a for a in self.possible_agents if a not in actions]
        if unknown or missing:
            raise ValueError(f"actions must have exactly the agents {self.possible_agents}; "
                             f"unknown {unknown}, missing {missing}")

    def _observations(self) -> dict[str, np.ndarray]:
        """Each agent's (B, obs_dim) float32 observations inside its space (NaN as 0), new
        arrays every step (contiguous blocks of one buffer)."""
        return dict(zip(self.possible_agents, self._obs_box.clip_rows(self.sim.observe_all())))
