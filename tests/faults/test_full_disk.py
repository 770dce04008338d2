"""A full disk (a small tmpfs mounted by the test as the sessions folder): one sentence, nothing half-made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nanogpt_tui.cli import main

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "sessions"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "ngt-reliability-full", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_creating_a_session_on_a_full_disk_is_one_sentence_and_leaves_nothing(tiny_disk, tmp_path, capsys):
    config = tmp_path / "nanogpt-tui.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{tiny_disk}"\n'
                      f'baselines_dir = "{REPO / "human_baselines"}"\n')
    (tiny_disk / "filler").write_bytes(b"\0" * 60 * 1024)
    code = main(["--config", str(config), "run", "--agent", "scripted", "--backend", "local", "--record", "smoke",
                 "--budget-gpu-hours", "0.01"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("is full" in lines[0] or "No space left" in lines[0]), err
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]  # no half-made session, no staging folder
