"""The smoke record runs for real: synthetic shards from the CLI, `bash run.sh` under torchrun, a score below its target."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "human_baselines" / "smoke"
FINAL_LINE = re.compile(r"^step:(\d+)/(\d+) val_loss:(\d+\.\d+) train_time:(\d+)ms step_avg:(\S+)ms$", re.M)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # torchrun and python from the environment running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SEED", None)
    return env


def _synth(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanogpt_tui", "data", "synth", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        cwd=REPO,
    )


def test_cli_data_synth_subprocess(tmp_path: Path) -> None:
    done = _synth(tmp_path / "fineweb10B")
    assert done.returncode == 0, done.stderr
    assert "entropy floor 1.8792 nats/token" in done.stdout
    assert (tmp_path / "fineweb10B" / "fineweb_train_000004.bin").exists()

    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a shard")
    done = subprocess.run(
        [sys.executable, "-m", "nanogpt_tui", "data", "inspect", str(bad)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 2
    assert done.stderr.startswith("nanogpt-tui: error: ") and "too short to be a token shard" in done.stderr


@pytest.mark.slow
def test_smoke_record_trains_below_its_target(tmp_path: Path) -> None:
    record_dir = tmp_path / "smoke"
    record_dir.mkdir()
    for name in ("train_gpt.py", "run.sh", "record.toml"):
        shutil.copy(SMOKE / name, record_dir / name)
    record = tomllib.loads((record_dir / "record.toml").read_text(encoding="utf-8"))
    target = record["val_loss_target"]
    assert _synth(record_dir / "data" / "fineweb10B").returncode == 0

    started = time.monotonic()
    # Run from elsewhere: run.sh must find its own folder.
    done = subprocess.run(["bash", str(record_dir / "run.sh")], capture_output=True, text=True, timeout=280, env=_env(), cwd=tmp_path)
    wall_s = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout

    # The log begins with the code, then a line of 100 '='.
    code = (record_dir / "train_gpt.py").read_text(encoding="utf-8")
    separator = "\n" + "=" * 100 + "\n"
    assert out.startswith(code)
    assert out[len(code) :].lstrip("\n").startswith("=" * 100)
    assert separator in out

    scored = [m for m in FINAL_LINE.finditer(out[len(code) :])]
    assert scored, out[-2000:]
    first, last = scored[0], scored[-1]
    assert first.group(1) == "0" and first.group(5) == "nan"
    assert float(first.group(3)) > target + 3.0  # step 0 guesses uniformly: nowhere near the target
    assert last.group(1) == last.group(2)  # the last validation is at the final step
    val_loss = float(last.group(3))
    train_time_ms = int(last.group(4))
    assert val_loss < target, f"final val_loss {val_loss} is not below the target {target}"
    assert val_loss > record["entropy_floor_nats"] - 0.01
    assert 0 < train_time_ms < wall_s * 1000

    # Like the speedrun, the run also writes its log under logs/, beginning with the code.
    logs = list((record_dir / "logs").glob("*.txt"))
    assert len(logs) == 1
    assert logs[0].read_text(encoding="utf-8").startswith(code + "\n" + "=" * 100)
    print(f"smoke record: val_loss {val_loss:.4f}, train_time {train_time_ms} ms, wall {wall_s:.1f} s")
