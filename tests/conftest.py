"""Shared fixtures: a private baselines folder and config per test, so tests never touch the repo's data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def smoke_baselines(dest: Path) -> Path:
    """`dest` (made if needed) holding the record timeline, the smoke record's code without its data or logs, and
    the edits the rest of the smoke track is written from (our_records.toml)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("records.tsv", "our_records.toml"):
        shutil.copy(REPO / "human_baselines" / name, dest / name)
    shutil.copytree(REPO / "human_baselines" / "smoke", dest / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    return dest


@pytest.fixture
def baselines_dir(tmp_path: Path) -> Path:
    """A copy of human_baselines/records.tsv in a temporary folder."""
    d = tmp_path / "human_baselines"
    d.mkdir()
    shutil.copy(REPO / "human_baselines" / "records.tsv", d / "records.tsv")
    return d


@pytest.fixture
def config_file(tmp_path: Path, baselines_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file pointing at the temporary baselines and sessions folders, selected through the environment."""
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(
        "schema_version = 1\n"
        "[paths]\n"
        f'baselines_dir = "{baselines_dir.name}"\n'
        'sessions_dir = "sessions"\n'
    )
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    return path
