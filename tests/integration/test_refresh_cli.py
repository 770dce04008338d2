"""`nanogpt-tui refresh` end to end: both records fetched from a mirror on 127.0.0.1 (self-written multi-file
records in the records' style), the static rules, the gap, the image plan, the config written with a backup."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.records import MANIFEST_COLUMNS, load_timeline, sha256_text
from tests.fakes.record_logs import log_of, section_of
from tests.fakes.static_server import StaticServer

REPO = Path(__file__).resolve().parents[2]
ANCHOR_2026 = REPO / "tests" / "fixtures" / "rules" / "anchor2026"
BIGRAM, FP8 = "2026-01-19_BigramHashEmbedding", "2026-07-17_FP8DownProjection"
COMMIT = "feedfacefeedfacefeedfacefeedfacefeedface"
BIGRAM_ENV = ("Running Python 3.10.12 (main, Nov  4 2025, 08:48:33) [GCC 11.4.0]\n"
              "Running PyTorch 2.10.0.dev20251210+cu126 compiled for CUDA 12.6\nRunning Triton version 3.6.0\n")
FP8_ENV = ("Running Python 3.12.3 (main, Jan 22 2026, 20:57:42) [GCC 13.3.0]\n"
           "Running PyTorch 2.10.0+cu128 compiled for CUDA 12.8\nRunning Triton version 3.6.0\n")


def bigram_files() -> dict[str, str]:
    return {name: (ANCHOR_2026 / name).read_text() for name in ("train_gpt.py", "triton_kernels.py")}


def fp8_files() -> dict[str, str]:
    """The anchor with a newer record's kind of change: a new kernel, a tuned learning rate, FA3 from
    kernels-community."""
    files = bigram_files()
    files["train_gpt.py"] = (files["train_gpt.py"]
                             .replace("lr: float = 0.008", "lr: float = 0.0085")
                             .replace("get_kernel('varunneal/flash-attention-3')",
                                      "get_kernel('kernels-community/flash-attn3', version=1)")
                             .replace("self.proj(relu_square(self.fc(x)))", "fused_relu_square_proj(x, self.fc, self.proj)")
                             .replace("from triton_kernels import relu_square,",
                                      "from triton_kernels import fused_relu_square_proj, relu_square,"))
    files["triton_kernels.py"] += ("\n\ndef fused_relu_square_proj(x, fc, proj):\n"
                                   "    return proj(relu_square(fc(x)))\n")
    return files


def mirror_records(baselines_dir: Path) -> dict[str, bytes]:
    """Point the manifest's rows for the two records at self-written logs; return what the mirror serves."""
    served = {}
    text = (baselines_dir / "records.tsv").read_text()
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        if row["name"] not in (BIGRAM, FP8):
            continue
        files = bigram_files() if row["name"] == BIGRAM else fp8_files()
        log = log_of(files, env=BIGRAM_ENV if row["name"] == BIGRAM else FP8_ENV)
        log_path = f"records/track_1_short/{row['name']}/run 1.txt"
        row.update(log_path=log_path, commit=COMMIT, code_sha256=sha256_text(section_of(files)),
                   code_files=";".join(f"{n}:{sha256_text(t)}" for n, t in files.items()))
        served[f"/{COMMIT}/" + log_path.replace(" ", "%20")] = log.encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_NONE,
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (baselines_dir / "records.tsv").write_text(out.getvalue())
    assert set(MANIFEST_COLUMNS) <= set(rows[0])
    return served


def test_refresh_bigram_to_fp8_end_to_end(config_file, baselines_dir, capsys):
    served = mirror_records(baselines_dir)
    config_file.write_text(config_file.read_text() + "# my notes stay\n[benchmark]\nbudget_gpu_hours = 512.0\n")
    with StaticServer(served) as server:
        assert main(["refresh", "--anchor", BIGRAM, "--target", FP8, "--budget-gpu-hours", "256",
                     "--base-url", server.url]) == 0
        assert len(server.requests) == 2
    out = capsys.readouterr().out
    assert f"fetched: {BIGRAM} (train_gpt.py, triton_kernels.py)" in out and f"fetched: {FP8} (" in out
    assert (baselines_dir / FP8 / "triton_kernels.py").read_text() == fp8_files()["triton_kernels.py"]
    assert f"static rules: {FP8} passes all against {BIGRAM}" in out
    assert "gap: 25.50 s = 100% of human progress, official record times (99.30 s - 73.80 s); not re-timed" in out
    # The image plan is the anchor's stack: the closest release of its nightly, FA3 from varunneal's kernel repo.
    assert "--build-arg TORCH_VERSION=2.10.0+cu126" in out and "--build-arg HF_KERNELS=varunneal/flash-attention-3" in out
    # The config: anchor, target and budget written, everything else kept, the old file backed up.
    written = config_file.read_text()
    assert "# my notes stay" in written
    benchmark = tomllib.loads(written)["benchmark"]
    assert benchmark == {"anchor": BIGRAM, "target": FP8, "budget_gpu_hours": 256.0}
    backups = list(config_file.parent.glob(config_file.name + ".bak-*"))
    assert len(backups) == 1 and "anchor" not in backups[0].read_text()
    assert "Left to do:" in out and "submit --baseline --runs 10" in out
    # A second refresh finds both records present and fetches nothing.
    with StaticServer({}) as server:
        assert main(["refresh", "--anchor", BIGRAM, "--target", FP8, "--base-url", server.url]) == 0
        assert server.requests == []
    assert f"present: {BIGRAM}" in capsys.readouterr().out


def test_refresh_says_which_import_is_needed_and_writes_nothing(config_file, baselines_dir, capsys):
    before = config_file.read_text()
    assert main(["refresh", "--anchor", "2026-01-26-UntieValueEmbeddings", "--target", "2026-01-31_record66",
                 "--base-url", "http://127.0.0.1:9", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "`nanogpt-tui records import DIR --name 2026-01-31_record66`" in err
    assert config_file.read_text() == before


def test_refresh_refuses_a_target_the_rules_reject(config_file, baselines_dir, capsys):
    served = mirror_records(baselines_dir)
    # A "target" whose validation is halved: the rules must reject it, and nothing is written.
    cheat = fp8_files()
    cheat["train_gpt.py"] = cheat["train_gpt.py"].replace("val_tokens: int = 10485760", "val_tokens: int = 5242880")
    text = (baselines_dir / "records.tsv").read_text()
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        if row["name"] == FP8:
            row.update(code_sha256=sha256_text(section_of(cheat)),
                       code_files=";".join(f"{n}:{sha256_text(t)}" for n, t in cheat.items()))
            served[f"/{COMMIT}/" + row["log_path"].replace(" ", "%20")] = log_of(cheat, env=FP8_ENV).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (baselines_dir / "records.tsv").write_text(out.getvalue())
    load_timeline(baselines_dir)
    before = config_file.read_text()
    with StaticServer(served) as server:
        assert main(["refresh", "--anchor", BIGRAM, "--target", FP8, "--base-url", server.url]) == 2
    captured = capsys.readouterr()
    assert "[val-constants]" in captured.out and "must pass the static rules" in captured.err
    assert config_file.read_text() == before


@pytest.mark.parametrize("args", [["--anchor", FP8], ["--anchor", FP8, "--target", BIGRAM]])
def test_refresh_refuses_pairs_without_a_later_target(config_file, capsys, args):
    assert main(["refresh", *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1
