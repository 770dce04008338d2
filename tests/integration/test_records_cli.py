"""`records list|fetch|import` and `score` through the real CLI entry point, against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.records import MANIFEST_COLUMNS, sha256_text
from tests.fakes.record_logs import log_of, section_of
from tests.fakes.static_server import StaticServer

CODE = "import os\n\nprint('a tiny record')\n"
LOG = log_of({"train_gpt.py": CODE})
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOG_PATH = "records/track_1_short/2099-01-01_Test/run log.txt"
# A record in the 2026 style: train_gpt.py reads and imports triton_kernels.py beside it.
MAIN_2026 = ("import os\nimport sys\n\nwith open(sys.argv[0]) as f:\n    code = f.read()\n"
             "with open(os.path.join(os.path.dirname(sys.argv[0]), 'triton_kernels.py')) as f:\n"
             "    code += f\"\\n\\n{'-'*40}\\n# triton_kernels.py\\n{'-'*40}\\n\\n\"\n    code += f.read()\n\n"
             "from triton_kernels import relu_square\n\nprint(relu_square)\n")
KERNELS_2026 = "import torch\n\n\ndef relu_square(x):\n    return torch.relu(x) ** 2\n"
FILES_2026 = {"train_gpt.py": MAIN_2026, "triton_kernels.py": KERNELS_2026}


def add_test_record(baselines_dir: Path, sha: str | None = None, files: dict[str, str] | None = None,
                    name: str = "2099-01-01_Test", log_path: str = LOG_PATH) -> None:
    files = files or {"train_gpt.py": CODE}
    section = section_of(files)
    code_files = ";".join(f"{n}:{sha256_text(t)}" for n, t in files.items())
    values = {"number": "999", "name": name, "date": "2099-01-01", "record_dir": name, "title": "A test record",
              "record_time_s": "50.0", "log_path": log_path, "commit": COMMIT,
              "code_sha256": sha or sha256_text(section), "code_lines": str(section.count("\n")),
              "code_files": code_files}
    row = [values.get(column, "") for column in MANIFEST_COLUMNS]
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


def test_fetch_splits_a_multi_file_record_into_its_files(config_file, baselines_dir, capsys):
    add_test_record(baselines_dir, files=FILES_2026)
    with StaticServer({url_path(): log_of(FILES_2026).encode()}) as server:
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url]) == 0
    dest = baselines_dir / "2099-01-01_Test"
    assert sorted(p.name for p in dest.iterdir()) == ["run.sh", "train_gpt.py", "triton_kernels.py"]
    assert (dest / "train_gpt.py").read_text() == MAIN_2026
    assert (dest / "triton_kernels.py").read_text() == KERNELS_2026
    assert "2 files" in capsys.readouterr().out


def test_fetch_refuses_a_file_that_differs_from_the_manifest(config_file, baselines_dir, capsys):
    # The section's hash matches but one file's does not (a manifest row edited by hand): nothing is written.
    other = dict(FILES_2026, **{"triton_kernels.py": KERNELS_2026 + "# other\n"})
    add_test_record(baselines_dir, files=other, sha=sha256_text(section_of(FILES_2026)))
    with StaticServer({url_path(): log_of(FILES_2026).encode()}) as server:
        assert main(["records", "fetch", "2099-01-01_Test", "--base-url", server.url]) == 2
    assert "differ from the manifest's" in capsys.readouterr().err
    assert not (baselines_dir / "2099-01-01_Test").exists()


@pytest.mark.parametrize(
    ("files", "sha", "message"),
    [
        ({}, None, "failed with HTTP 404"),
        ({url_path(): b"no separator here\n"}, None, "no line of '=' characters"),
        ({url_path(): ("different code\n" + "=" * 100 + "\n").encode()}, None, "refusing it"),
        ({url_path(): log_of({"train_gpt.py": CODE, "../evil.py": "x = 1\n"}).encode()}, None,
         "does not name a plain file"),
        ({url_path(): b"\xff\xfe\x00bad"}, None, "is not UTF-8 text"),
    ],
)
def test_fetch_failures_are_clear_and_write_nothing(config_file, baselines_dir, capsys, files, sha, message):
    served = files.get(url_path(), b"")
    if b"evil" in served:  # the manifest pins that very section, so only the split can refuse it
        add_test_record(baselines_dir, sha=sha256_text(served.decode().split("=" * 100)[0]))
    else:
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
    (src / "train_gpt.py").write_text(MAIN_2026)
    (src / "triton_kernels.py").write_text(KERNELS_2026)
    (src / "README.md").write_text("not code\n")
    (src / "run.log").write_text("output\n")
    add_test_record(baselines_dir, files=FILES_2026)
    assert main(["records", "import", str(src), "--name", "2099-01-01_Test"]) == 0
    dest = baselines_dir / "2099-01-01_Test"
    assert sorted(p.name for p in dest.iterdir()) == ["run.sh", "train_gpt.py", "triton_kernels.py"]
    assert (dest / "triton_kernels.py").read_text() == KERNELS_2026
    # A custom name is accepted; a manifest name whose code differs, or lacks a file, is refused.
    (src / "triton_kernels.py").write_text(KERNELS_2026 + "# tuned\n")
    assert main(["records", "import", str(src), "--name", "2099-01-01_Test", "--force"]) == 2
    assert "triton_kernels.py differs from record '2099-01-01_Test'" in capsys.readouterr().err
    (src / "triton_kernels.py").unlink()
    assert main(["records", "import", str(src), "--name", "2099-01-01_Test", "--force"]) == 2
    assert "lacks triton_kernels.py" in capsys.readouterr().err
    (src / "train_gpt.py").write_text(CODE + "# tuned\n")
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


def test_records_env_and_image_plan_show_the_two_stacks(config_file, capsys):
    assert main(["records", "env", "2025-09-03_FA3", "--json"]) == 0
    fa3 = json.loads(capsys.readouterr().out)
    assert fa3["stack"] | {"torch": "2.9.0.dev20250718+cu126", "triton": "3.4.0", "attention": "flash_attn_interface"} \
        == fa3["stack"] and "torch" in fa3["must_match"] and "python" in fa3["may_differ"]
    assert main(["records", "env", "2026-07-17_FP8DownProjection"]) == 0
    out = capsys.readouterr().out
    assert "2.10.0+cu128" in out and "kernels-community/flash-attn3" in out and "Must match:" in out
    assert main(["image", "plan", "--anchor", "2026-07-17_FP8DownProjection"]) == 0
    out = capsys.readouterr().out
    assert "--build-arg TORCH_VERSION=2.10.0+cu128" in out and "docker build -f image/Dockerfile" in out
    assert main(["image", "plan", "--anchor", "2025-09-03_FA3", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["build_args"]["TORCH_VERSION"] == "2.9.0+cu126"
    assert {d["field"]: d["must_match"] for d in plan["differences"]} == {"torch": False, "python": False}
    assert main(["image", "plan", "--anchor", "2024-10-04_record3"]) == 2
    assert "states no PyTorch version" in capsys.readouterr().err
