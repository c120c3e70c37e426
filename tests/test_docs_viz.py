"""The docs, the episode figure and the text renderer stay true to the code.

The reference page is hand-written (units, meanings) but checked here against a real env,
so a new config key, observation label or info key fails CI until it is documented.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs import config as config_module
from powergrid.envs.multi_agent_microgrids import COMMON_OBS, MultiAgentMicrogrids

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SEED_PAGE = DOCS / "examples" / "multi-microgrid-p2p.md"
SEED_BLOCK = '''\
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from heron.protocols.horizontal import P2PTradingProtocol
env_config = {"centralized": True, "max_episode_steps": 24, "horizontal_protocol": P2PTradingProtocol()}
env = MultiAgentMicrogrids(env_config)
obs, info = env.reset()
for _ in range(24):
    actions = {agent_id: env.action_spaces[agent_id].sample() for agent_id in env.agents}
    obs, rewards, terminateds, truncateds, infos = env.step(actions)
'''


@pytest.fixture(scope="module")
def episode() -> tuple[MultiAgentMicrogrids, list[dict[str, dict]]]:
    """One short real episode, shared: building an env dominates these tests' run time."""
    env = MultiAgentMicrogrids({"max_episode_steps": 6, "start_day": 172, "render_mode": "ansi"})
    _, history = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": 172})
    return env, history


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def info_keys(info: dict[str, Any]) -> set[str]:
    """Every key of an info dict, nested dicts included, except device names (config data)."""
    keys: set[str] = set()
    for key, value in info.items():
        keys.add(key)
        if key == "devices":
            for entry in value.values():
                keys.update(entry)
        elif isinstance(value, dict):
            keys.update(info_keys(value))
    return keys


# --------------------------------------------------------------------------- figure


def test_plot_episode_writes_a_png_with_one_panel_per_microgrid_plus_six(episode, tmp_path):
    pytest.importorskip("matplotlib")
    from powergrid.viz import plot_episode

    env, history = episode
    path = tmp_path / "episode.png"
    fig = plot_episode(history, path, env=env)
    try:
        assert path.exists() and path.stat().st_size > 10_000
        # n power panels + SOC, market, grid, voltage, cost, cumulative cost, and the
        # market's price axis.
        assert len(fig.axes) == len(env.possible_agents) + 7
        titles = " ".join(ax.get_title() for ax in fig.axes)
        for agent in env.possible_agents:
            assert agent in titles
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_plot_episode_works_without_env(episode):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from powergrid.viz import plot_episode

    fig = plot_episode(episode[1])
    plt.close(fig)
    assert len(fig.axes) == len(episode[0].possible_agents) + 7


def test_plot_episode_fills_both_columns_without_an_empty_panel(episode):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from powergrid.viz import plot_episode

    env, history = episode
    fig = plot_episode(history, env=env)
    try:
        panels = [ax for ax in fig.axes if ax.get_title()]  # the twin price axis has none
        for column in (0, 1):
            boxes = sorted((ax.get_position().y0, ax.get_position().y1) for ax in panels
                           if (ax.get_position().x0 < 0.5) == (column == 0))
            # the column's panels reach from near the bottom to near the top, without gaps
            assert boxes[0][0] < 0.12 and boxes[-1][1] > 0.85
            assert all(b[0] - a[1] < 0.1 for a, b in zip(boxes, boxes[1:]))
            assert all(ax.has_data() for ax in panels)
    finally:
        plt.close(fig)


def test_plot_episode_draws_the_no_trade_reference(episode):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from powergrid.viz import plot_episode

    env, history = episode
    ref_env = MultiAgentMicrogrids({"max_episode_steps": 6, "start_day": 172,
                                    "horizontal_protocol": None})
    _, reference = run_episode(ref_env, RuleBasedPolicy(ref_env), seed=0,
                               options={"start_day": 172})
    fig = plot_episode(history, env=env, reference=reference)
    try:
        cumulative = next(ax for ax in fig.axes if ax.get_title().startswith("Cumulative"))
        labels = [line.get_label() for line in cumulative.get_lines()]
        assert any("no trading" in lab for lab in labels)
        assert "saves" in fig.get_suptitle()
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="reference has 5 steps"):
        plot_episode(history, reference=reference[:5])


def test_plot_episode_soc_lines_differ_in_style(episode):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from powergrid.viz import plot_episode

    env, history = episode
    fig = plot_episode(history, env=env)
    try:
        soc = next(ax for ax in fig.axes if ax.get_title().startswith("Storage"))
        lines = [ln for ln in soc.get_lines() if ln.get_label().startswith("MG")]
        styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
        assert len(lines) == 2 and len(styles) == 2
        assert len({ln.get_marker() for ln in lines}) == 2  # visible even where they overlap
    finally:
        plt.close(fig)


def test_plot_episode_rejects_empty_or_foreign_history():
    from powergrid.viz import plot_episode

    with pytest.raises(ValueError, match="history is empty"):
        plot_episode([])
    with pytest.raises(ValueError, match="lacks keys"):
        plot_episode([{"MG1": {"hour": 0}}])


def test_importing_powergrid_viz_does_not_import_matplotlib():
    code = ("import sys, powergrid.viz; "
            "sys.exit(1 if 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --------------------------------------------------------------------------- render


def test_ansi_render_names_every_agent_after_a_step(episode):
    env, _ = episode
    text = env.render()
    assert isinstance(text, str)
    for agent in env.possible_agents:
        assert agent in text


def test_ansi_render_names_every_agent_before_the_first_step():
    env = MultiAgentMicrogrids({"max_episode_steps": 2, "render_mode": "ansi"})
    env.reset(seed=1)
    text = env.render()
    for agent in env.possible_agents:
        assert agent in text


# --------------------------------------------------------------------------- docs content


def test_seed_page_contains_the_seed_code_verbatim():
    assert SEED_BLOCK in python_blocks(SEED_PAGE.read_text())


def test_seed_page_python_blocks_run():
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in python_blocks(SEED_PAGE.read_text()):
        exec(compile(block, str(SEED_PAGE), "exec"), namespace)
    env = namespace["env"]
    assert env.agents == []  # the 24 steps ran the episode to its end
    assert all(namespace["truncateds"].values())
    assert set(namespace["infos"]) >= {"MG1", "MG2"}


@pytest.fixture(scope="module")
def env_page() -> str:
    return (DOCS / "environment.md").read_text()


def test_environment_page_documents_every_config_key(env_page):
    from dataclasses import fields

    for cls in (config_module.EnvConfig, config_module.MicrogridSpec):
        missing = [f.name for f in fields(cls) if f"`{f.name}`" not in env_page]
        assert not missing, f"docs/environment.md lacks {cls.__name__} fields {missing}"


def test_environment_page_documents_every_observation_label(episode, env_page):
    env, _ = episode
    labels = {c[0] for c in COMMON_OBS} | {x for a in env.possible_agents
                                           for x in env.obs_labels[a]}
    try:
        from powergrid.envs.coordination import DSO_OBS
    except ImportError:  # the operator agent is optional
        DSO_OBS = ()
    labels |= {c[0] for c in DSO_OBS}
    missing = sorted(x for x in labels if f"`{x}`" not in env_page)
    assert not missing, f"docs/environment.md lacks observation labels {missing}"


def test_environment_page_documents_every_info_key(episode, env_page):
    _, history = episode
    keys = set().union(*(info_keys(info) for info in history[0].values()))
    missing = sorted(k for k in keys if f"`{k}`" not in env_page)
    assert not missing, f"docs/environment.md lacks info keys {missing}"


def test_examples_index_lists_every_example_script():
    index = (DOCS / "examples" / "index.md").read_text()
    missing = [p.name for p in sorted((ROOT / "examples").glob("[0-9]*.py"))
               if p.name not in index]
    assert not missing, f"docs/examples/index.md lacks {missing}"


def test_mkdocs_build_strict_passes(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()
