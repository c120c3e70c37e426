"""The seed example runs with every clearing rule and prints the P2P vs grid-only comparison."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("clearing", ["uniform", "pay_as_bid", "cda", "mcafee"])
def test_example_02_runs_with_every_clearing_rule(clearing, capsys):
    main = runpy.run_path(str(EXAMPLES / "02_multi_microgrid_p2p.py"), run_name="example")["main"]
    main(["--clearing", clearing, "--quiet"])
    out = capsys.readouterr().out
    assert f"{clearing}, rule policy" in out and "without P2P (grid only)" in out


def test_example_02_prints_every_hour_and_writes_a_plot(tmp_path, capsys):
    main = runpy.run_path(str(EXAMPLES / "02_multi_microgrid_p2p.py"), run_name="example")["main"]
    main(["--policy", "random", "--plot", str(tmp_path / "ep.png")])
    out = capsys.readouterr().out
    assert out.count("hour ") == 24 and "MG1" in out and "MG2" in out
    assert (tmp_path / "ep.png").stat().st_size > 10_000


def test_example_01_single_microgrid(capsys):
    main = runpy.run_path(str(EXAMPLES / "01_single_microgrid.py"), run_name="example")["main"]
    main(["--day", "10"])
    assert "rule-based cost" in capsys.readouterr().out
