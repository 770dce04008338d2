"""The architecture holds: `lint-imports` keeps the layers contracts in pyproject.toml (and reports a broken one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path, config: Path | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is not installed: install the test extras (pip install -e '.[test]')"
    args = [exe, "--no-cache"] + (["--config", str(config)] if config else [])
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=240, env=env)


def test_the_layers_contracts_are_kept():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_a_module_importing_upwards_breaks_the_contract(tmp_path):
    # The same contracts on a copy of the package where the contract layer imports the session manager.
    package = tmp_path / "nanogpt_tui"
    shutil.copytree(REPO / "nanogpt_tui", package, ignore=shutil.ignore_patterns("__pycache__", "*.md", "*.tcss"))
    upward = package / "contract" / "upward.py"
    upward.write_text('"""Deliberately wrong."""\nfrom nanogpt_tui.sessions import manager  # noqa: F401\n')
    config = tmp_path / "pyproject.toml"
    config.write_text((REPO / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = _lint_imports(tmp_path, config, pythonpath=tmp_path)
    assert result.returncode != 0
    assert "nanogpt_tui.contract is not allowed to import nanogpt_tui.sessions" in result.stdout


def test_every_module_of_the_package_has_a_layer():
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    (top,) = [c for c in contracts if c["containers"] == ["nanogpt_tui"]]
    named = {name.strip() for layer in top["layers"] for name in layer.replace("|", ":").split(":")}
    modules = {p.stem if p.is_file() else p.name for p in (REPO / "nanogpt_tui").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert modules - named == set(), "add these to a layer in pyproject.toml's [tool.importlinter] contract"
