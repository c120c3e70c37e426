"""What a user installs: metadata, the sdist's contents, and the first-run numba notice."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_a_pep639_expression_with_its_file():
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_numba_and_matplotlib_are_core_dependencies():
    names = {d.split(">")[0].split("=")[0].strip() for d in pyproject()["project"]["dependencies"]}
    assert {"numba", "matplotlib"} <= names


def test_both_packages_ship_py_typed():
    data = pyproject()["tool"]["setuptools"]["package-data"]
    for pkg in ("heron", "powergrid"):
        assert "py.typed" in data[pkg] and (ROOT / pkg / "py.typed").exists()


def test_sdist_contains_what_its_own_tests_read(tmp_path):
    pytest.importorskip("build")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {"LICENSE", "README.md", "mkdocs.yml", "powergrid/data/profiles.npz",
              "powergrid/py.typed", "heron/py.typed", "docs/environment.md"}
    needed |= {str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("*.py")}
    needed |= {str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.py")}
    assert needed <= names, sorted(needed - names)
    assert not any(n.endswith((".pyc", ".nbi", ".nbc")) for n in names)


def test_first_compilation_of_uncached_kernels_is_announced_once(tmp_path, capsys,
                                                                 monkeypatch):
    pytest.importorskip("numba")
    from powergrid.pf import jit

    (tmp_path / "kern.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef double(x):\n    return 2 * x\n")
    spec = importlib.util.spec_from_file_location("kern", tmp_path / "kern.py")
    kern = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kern)
    monkeypatch.setattr(jit, "_announced", False)
    jit.announce_compilation(kern.double)
    assert "compiling the numba power-flow kernels" in capsys.readouterr().err
    jit.announce_compilation(kern.double)  # once per process
    assert capsys.readouterr().err == ""
    assert kern.double(2) == 4  # compiles and writes the cache
    monkeypatch.setattr(jit, "_announced", False)
    jit.announce_compilation(kern.double)
    assert capsys.readouterr().err == ""  # cached: nothing to say


def test_soak_shows_progress_on_stderr_and_keeps_stdout_for_results():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--steps", "48", "--warmup", "8"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "soak" in result.stderr and "48/48" in result.stderr
    assert "soak:" not in result.stdout and "invariant violations: 0" in result.stdout



def test_the_core_imports_first_without_pulling_in_the_env_classes():
    # the core sits below the envs: importing it first must neither cycle back into
    # powergrid.envs' env modules nor fail half-initialised (it did, via powergrid.envs)
    code = ("import sys, powergrid.core.market, powergrid.core.step; "
            "print(sorted(m for m in sys.modules if m in "
            "('powergrid.envs.multi_agent_microgrids', 'powergrid.envs.vector')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True)
    assert out.stdout.strip() == "[]"
