"""`records list|fetch|import` and `score` through the real CLI entry point, against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.records import MANIFEST_COLUMNS, sha256_text
from tests.fakes.static_server import StaticServer

CODE = "import os\n\nprint('a tiny record')\n"
LOG = CODE + "=" * 100 + "\nstep:10/10 val_loss:3.2700 train_time:1000ms step_avg:100.00ms\n"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOG_PATH = "records/track_1_short/2099-01-01_Test/run log.txt"


def add_test_record(baselines_dir: Path, sha: str = sha256_text(CODE)) -> None:
    row = ["999", "2099-01-01_Test", "2099-01-01", "2099-01-01_Test", "A test record", "50.0", "", LOG_PATH,
           COMMIT, sha, "3", "", ""]
    assert len(row) == len(MANIFEST_COLUMNS)
    with (baselines_dir / "records.tsv").open("a") as handle:
        handle.write("\t".join(row) + "\n")


def url_path(log_path: str = LOG_PATH) -> str:
    return f"/{COMMIT}/" + log_path.replace(" ", "%20")


def test_records_list_json(config_file, capsys):
    assert main(["records", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    fa3 = next(r for r in rows if r["name"] == "2025-09-03_FA3")
    assert fa3 == fa3 | {"number": 29, "date": "2025-09-03", "record_time_s": 163.86,
                         "seconds_faster_vs_fa3": 0.0, "code": "missing"}
    assert next(r for r in rows if r["name"] == "2026-07-17_FP8DownProjection")["seconds_faster_vs_fa3"] is None
    assert main(["records", "list"]) == 0
    assert "2025-09-03_FA3" in capsys.readouterr().out


def test_fetch_writes_code_and_run_sh(config_file, baselines_dir, capsys):
    add_test_record(baselines_dir)
    with StaticServer({url_path(): LOG.encode()}) as server:
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url]) == 0
    dest = baselines_dir / "2099-01-01_Test"
    assert (dest / "train_gpt.py").read_text() == CODE
    assert "torchrun --standalone --nproc_per_node=8 train_gpt.py" in (dest / "run.sh").read_text()
    assert main(["records", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert next(r for r in rows if r["name"] == "2099-01-01_Test")["code"] == "present"
    # Fetching again refuses to overwrite without --force.
    with StaticServer({url_path(): LOG.encode()}) as server:
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url]) == 2
        assert "already exists; pass --force" in capsys.readouterr().err
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url, "--force"]) == 0


@pytest.mark.parametrize(
    ("files", "sha", "message"),
    [
        ({}, None, "failed with HTTP 404"),
        ({url_path(): b"no separator here\n"}, None, "no line of '=' characters"),
        ({url_path(): ("different code\n" + "=" * 100 + "\n").encode()}, None, "refusing it"),
        ({url_path(): b"\xff\xfe\x00bad"}, None, "is not UTF-8 text"),
    ],
)
def test_fetch_failures_are_clear_and_write_nothing(config_file, baselines_dir, capsys, files, sha, message):
    add_test_record(baselines_dir)
    with StaticServer(files) as server:
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert sorted(p.name for p in baselines_dir.iterdir()) == ["records.tsv"]


def test_fetch_unknown_record_and_network_failure(config_file, baselines_dir, capsys):
    assert main(["records", "fetch", "2099-12-31_Nope"]) == 2
    assert "There is no record named '2099-12-31_Nope'" in capsys.readouterr().err
    add_test_record(baselines_dir)
    # Nothing listens on port 9 of 127.0.0.1: a refused connection, as when offline.
    assert main(["records", "fetch", "2099-01-01_Test", "--base-url", "http://127.0.0.1:9", "--timeout", "5"]) == 2
    assert "Could not download" in capsys.readouterr().err
    assert main(["records", "fetch", "2026-01-31_record66"]) == 2
    assert "cannot be fetched" in capsys.readouterr().err


def test_import_local_record_folder(config_file, baselines_dir, tmp_path, capsys):
    src = tmp_path / "checkout" / "2099-01-01_Test"
    src.mkdir(parents=True)
    (src / "train_gpt.py").write_text(CODE)
    (src / "triton_kernels.py").write_text("# kernels\n")
    (src / "README.md").write_text("not code\n")
    (src / "run.log").write_text("output\n")
    add_test_record(baselines_dir)
    assert main(["records", "import", str(src), "--name", "2099-01-01_Test"]) == 0
    dest = baselines_dir / "2099-01-01_Test"
    assert sorted(p.name for p in dest.iterdir()) == ["run.sh", "train_gpt.py", "triton_kernels.py"]
    # A custom name is accepted; a manifest name whose code differs is refused.
    (src / "train_gpt.py").write_text(CODE + "# tuned\n")
    assert main(["records", "import", str(src), "--name", "2099-01-01_Test", "--force"]) == 2
    assert "differs from record '2099-01-01_Test'" in capsys.readouterr().err
    assert main(["records", "import", str(src), "--name", "my-variant"]) == 0
    assert (baselines_dir / "my-variant" / "train_gpt.py").read_text().endswith("# tuned\n")


def test_import_bad_input(config_file, tmp_path, capsys):
    assert main(["records", "import", str(tmp_path / "missing"), "--name", "x"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["records", "import", str(tmp_path / "empty"), "--name", "x"]) == 2
    assert "holds no train_gpt.py" in capsys.readouterr().err
    (tmp_path / "empty" / "train_gpt.py").write_text("x = 1\n")
    assert main(["records", "import", str(tmp_path / "empty"), "--name", "../up"]) == 2
    assert "not a usable record name" in capsys.readouterr().err


def test_score_cli(config_file, capsys):
    assert main(["score", "--seconds-faster", "5.88", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["percent"] == pytest.approx(9.30, abs=0.005) and out["gap_s"] == pytest.approx(63.2192)
    assert main(["score", "--anchor", "2026-01-19_BigramHashEmbedding", "--target", "2026-07-17_FP8DownProjection",
                 "--seconds-faster", "2.55", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["percent"] == pytest.approx(10.0)
    assert main(["score", "--anchor", "2026-07-17_FP8DownProjection", "--target", "2025-09-03_FA3",
                 "--seconds-faster", "1"]) == 2
    assert "does not come after the anchor" in capsys.readouterr().err


def test_every_command_has_help_and_version(capsys):
    from nanogpt_tui.cli import build_parser

    parser = build_parser()
    paths = []

    def walk(p, prefix):
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    paths.append(prefix + [name])
                    walk(sub, prefix + [name])

    walk(parser, [])
    assert ["records", "fetch"] in paths and ["score"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            main(path + ["--help"])
        assert info.value.code == 0
        assert "usage: nanogpt-tui " + " ".join(path) in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "usage: nanogpt-tui" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("nanogpt-tui 0.")
