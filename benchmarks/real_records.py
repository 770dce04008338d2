"""Measurements on the real record logs, read from a bare snapshot of KellerJordan/modded-nanogpt (never copied
into the repository): fill the manifest's per-file hashes and stacks, fetch every record into folders, and run
the static rules over real history.

    .venv/bin/python benchmarks/real_records.py SNAPSHOT_GIT_DIR manifest [--write]   # code_files + stack columns
    .venv/bin/python benchmarks/real_records.py SNAPSHOT_GIT_DIR fetch --out DIR      # records fetch, all records
    .venv/bin/python benchmarks/real_records.py SNAPSHOT_GIT_DIR rules --out DIR      # pairs and anchors

`fetch` serves the snapshot's files on 127.0.0.1 and runs `records fetch`'s own code against it; `rules` reads
the folders `fetch` wrote.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import io
import json
import subprocess
import sys
import threading
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.record_log import MAIN_FILE, code_section, split_code_section  # noqa: E402
from nanogpt_tui.stack import stack_from_log  # noqa: E402
from nanogpt_tui.records import (  # noqa: E402
    FA3, MANIFEST_COLUMNS, fetch_record, format_code_files, load_timeline, sha256_text,
)

BASELINES = REPO / "human_baselines"


def git_show(snapshot: Path, commit: str, path: str) -> bytes | None:
    done = subprocess.run(["git", "-C", str(snapshot), "show", f"{commit}:{path}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def records_with_code(timeline):
    return [r for r in timeline if r.can_fetch]


# --- manifest ------------------------------------------------------------------------------------------------


def cmd_manifest(args: argparse.Namespace) -> int:
    text = (BASELINES / "records.tsv").read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    rows = list(reader)
    problems = 0
    for row in rows:
        for column in MANIFEST_COLUMNS:
            row.setdefault(column, "")
        if not (row["log_path"] and row["commit"] and row["code_sha256"]):
            continue
        payload = git_show(args.snapshot, row["commit"], row["log_path"])
        if payload is None:
            print(f"{row['name']}: the snapshot lacks {row['log_path']} at {row['commit'][:12]}")
            problems += 1
            continue
        log = payload.decode("utf-8")
        section = code_section(log)
        if sha256_text(section) != row["code_sha256"]:
            print(f"{row['name']}: the section's sha256 differs from the manifest's")
            problems += 1
            continue
        files = split_code_section(section)
        row["code_files"] = format_code_files(files)
        row.update(stack_from_log(log, files).manifest_values())
    out = io.StringIO()
    # Our columns in their order, then any other the manifest holds (optional ones such as `track`), kept.
    columns = list(MANIFEST_COLUMNS) + [c for c in (reader.fieldnames or []) if c not in MANIFEST_COLUMNS]
    writer = csv.DictWriter(out, fieldnames=columns, delimiter="\t", quoting=csv.QUOTE_NONE,
                            lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    if args.write:
        (BASELINES / "records.tsv").write_text(out.getvalue(), encoding="utf-8")
        load_timeline(BASELINES)  # the manifest it wrote must read back
        print(f"wrote {BASELINES / 'records.tsv'}")
    else:
        sys.stdout.write(out.getvalue())
    return 1 if problems else 0


# --- fetch ---------------------------------------------------------------------------------------------------


class SnapshotServer:
    """Serves `/<commit>/<path>` from the snapshot on 127.0.0.1, as raw.githubusercontent.com would."""

    def __init__(self, snapshot: Path) -> None:
        def handler_get(handler: BaseHTTPRequestHandler) -> None:
            commit, _, path = urllib.parse.unquote(handler.path.lstrip("/")).partition("/")
            body = git_show(snapshot, commit, path)
            handler.send_response(200 if body is not None else 404)
            handler.send_header("Content-Length", str(len(body or b"")))
            handler.end_headers()
            handler.wfile.write(body or b"")

        handler = type("Handler", (BaseHTTPRequestHandler,), {"do_GET": handler_get,
                                                             "log_message": lambda *a: None})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]


def folder_check(folder: Path) -> list[str]:
    """What is wrong with a fetched record folder: a .py file that does not parse, or a companion that
    train_gpt.py opens or imports and the folder lacks."""
    problems = []
    trees = {}
    for path in sorted(folder.glob("*.py")):
        try:
            trees[path.name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as err:
            problems.append(f"{path.name} does not parse (line {err.lineno})")
    main = trees.get(MAIN_FILE)
    if main is None:
        return problems or [f"no {MAIN_FILE}"]
    for name in companions_named(main):
        if not (folder / name).is_file():
            problems.append(f"{MAIN_FILE} needs {name}, which is missing")
    return problems


def companions_named(tree: ast.AST) -> set[str]:
    """Files train_gpt.py reads next to itself (`open(... 'x.py')`) and modules it imports that the record
    ships (`from triton_kernels import ...`, a module its own log names)."""
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py") \
                and "/" not in node.value and " " not in node.value:
            named.add(node.value)
    return named


def cmd_fetch(args: argparse.Namespace) -> int:
    timeline = load_timeline(BASELINES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = SnapshotServer(args.snapshot)
    results = []
    for record in records_with_code(timeline):
        try:
            folder = fetch_record(timeline, record.name, out, base_url=server.url, force=True)
            problems = folder_check(folder)
            imported = local_imports(folder)
        except Exception as err:  # noqa: BLE001 - a measurement: report every failure and go on
            problems, imported = [f"fetch failed: {err}"], []
        results.append({"name": record.name, "date": record.date.isoformat(), "ok": not problems,
                        "files": sorted(p.name for p in (out / record.name).glob("*")) if not problems else [],
                        "local_imports": imported, "problems": problems})
    server.httpd.shutdown()
    since_fa3 = [r for r in results if r["date"] >= timeline.get(FA3).date.isoformat()]
    multi = [r for r in results if len([f for f in r["files"] if f.endswith(".py")]) > 1]
    summary = {
        "records_with_code": len(results), "fetched_ok": sum(r["ok"] for r in results),
        "since_fa3": len(since_fa3), "since_fa3_ok": sum(r["ok"] for r in since_fa3),
        "multi_file": len(multi), "failures": [r for r in results if not r["ok"]],
    }
    if args.json:
        print(json.dumps({"summary": summary, "records": results}, indent=2))
    else:
        for r in results:
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['name']:48} {' '.join(r['files'])} "
                  f"{'; '.join(r['problems'])}")
        print(f"\nfetched into folders whose .py files parse and whose {MAIN_FILE} finds its companions: "
              f"{summary['since_fa3_ok']}/{summary['since_fa3']} records with code from {FA3} on "
              f"({summary['fetched_ok']}/{summary['records_with_code']} of all records with code; "
              f"{summary['multi_file']} multi-file)")
    return 0 if summary["fetched_ok"] == summary["records_with_code"] else 1


def local_imports(folder: Path) -> list[str]:
    """Modules train_gpt.py imports that are files of the record, each checked to exist beside it."""
    tree = ast.parse((folder / MAIN_FILE).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if (folder / f"{name.split('.')[0]}.py").is_file():
                found.append(name)
    return sorted(set(found))


ANCHORS = (FA3, "2026-01-19_BigramHashEmbedding", "2026-07-17_FP8DownProjection")


@functools.lru_cache(maxsize=None)
def _read(folder: str):
    from nanogpt_tui.validator.rules.compare import analyse_candidate

    return analyse_candidate(folder)


def _analysis(folder: str, role: str):
    """A folder read once for both roles; as an anchor it must parse (what analyse_anchor demands)."""
    analysis = _read(folder)
    if role == "anchor" and (analysis.side is None or any(sf.error for sf in analysis.program.files)):
        from nanogpt_tui.validator.rules.compare import analyse_anchor

        return analyse_anchor(folder)  # raises the anchor's own error
    return analysis


def check_pair(job: tuple[str, str]) -> dict:
    """One record (job[1]) checked against another as its anchor (job[0]); each folder is read once per process."""
    from nanogpt_tui.validator.rules.compare import compare_analyses

    anchor, candidate = Path(job[0]), Path(job[1])
    print(f"checking {candidate.name} against {anchor.name}", file=sys.stderr, flush=True)
    report = compare_analyses(_analysis(job[0], "anchor"), _analysis(job[1], "candidate"))
    judge = getattr(report, "needs_judge", [])
    return {"anchor": anchor.name, "candidate": candidate.name, "ok": report.ok,
            "violations": [f"{v.rule} {v.file}:{v.line} {v.message}" for v in report.violations],
            "needs_judge": [f"{q.rule} {q.file}:{q.line} {q.message}" for q in judge]}


def cmd_rules(args: argparse.Namespace) -> int:
    """Every consecutive pair of records with code from FA3 on, and every later record against each anchor."""
    timeline = load_timeline(BASELINES)
    out = Path(args.out)
    since = [r for r in records_with_code(timeline) if r.date >= timeline.get(FA3).date and (out / r.name).is_dir()]
    order = sorted(since, key=lambda r: timeline.records.index(r))

    jobs = [(str(out / a.name), str(out / b.name)) for a, b in zip(order, order[1:])]
    anchor_jobs = {}
    for name in ANCHORS:
        anchor = timeline.get(name)
        later = [r for r in order if timeline.records.index(r) > timeline.records.index(anchor)]
        anchor_jobs[name] = [(str(out / anchor.name), str(out / r.name)) for r in later]
    everything = jobs + [j for js in anchor_jobs.values() for j in js]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = dict(zip(everything, pool.map(check_pair, everything, chunksize=4)))
    else:
        results = {job: check_pair(job) for job in everything}
    pairs = [results[j] for j in jobs]
    by_anchor = {name: [results[j] for j in js] for name, js in anchor_jobs.items()}
    summary = {"pairs": len(pairs), "pairs_ok": sum(p["ok"] for p in pairs),
               "anchors": {n: {"later": len(v), "ok": sum(p["ok"] for p in v),
                               "needs_judge_cases": sum(len(p["needs_judge"]) for p in v)}
                           for n, v in by_anchor.items()},
               "pairs_needs_judge_cases": sum(len(p["needs_judge"]) for p in pairs)}
    if args.json:
        print(json.dumps({"summary": summary, "pairs": pairs, "anchors": by_anchor}, indent=2))
    else:
        for p in pairs + [p for v in by_anchor.values() for p in v]:
            if not p["ok"] or p["needs_judge"]:
                print(f"{p['anchor']} -> {p['candidate']}:")
                for line in p["violations"]:
                    print(f"  violation  {line}")
                for line in p["needs_judge"]:
                    print(f"  judge      {line}")
        print(f"\nconsecutive pairs accepted: {summary['pairs_ok']}/{summary['pairs']} "
              f"(needs-the-judge cases: {summary['pairs_needs_judge_cases']})")
        for name, figures in summary["anchors"].items():
            print(f"later records accepted against {name}: {figures['ok']}/{figures['later']} "
                  f"(needs-the-judge cases: {figures['needs_judge_cases']})")
    return 0


# Cheats applied to a real anchor's own text: (name, the rule that must report it, [(file, regex, replacement)]).
# Each regex must match exactly once; "not applicable" is reported where the anchor lacks the line.
MODEL_COMPILE = r"(model: nn\.Module = torch\.compile\(model, dynamic=False, fullgraph=True)\)"
STOP = r"(\n        training_time_ms \+= 1000 \* \(time\.perf_counter\(\) - t0\))"
CHEATS = [
    ("compile-mode", "compile-flags", [("train_gpt.py", MODEL_COMPILE, r'\1, mode="max-autotune")')]),
    ("compile-mode-in-triton_kernels.py", "compile-flags",
     [("triton_kernels.py", r"\A", 'import torch as _t\n_fast = _t.compile(lambda x: x, mode="max-autotune")\n')]),
    ("inductor-setting-in-triton_kernels.py", "compiler-config",
     [("triton_kernels.py", r"\A", "import torch\ntorch._inductor.config.max_autotune_gemm = True\n")]),
    ("dynamo-setting-in-triton_kernels.py", "compiler-config",
     [("triton_kernels.py", r"\A", "import torch\ntorch._dynamo.config.automatic_dynamic_shapes = False\n")]),
    ("recompile-limit", "recompile-limit", [("train_gpt.py", r"recompile_limit = 64", "recompile_limit = 512")]),
    ("coordinate-descent", "coordinate-descent",
     [("train_gpt.py", r"\n# torch\._inductor\.config\.coordinate_descent_tuning = True",
       "\ntorch._inductor.config.coordinate_descent_tuning = True")]),
    ("val-tokens", "val-constants", [("train_gpt.py", r"val_tokens: int = 10485760", "val_tokens: int = 5242880")]),
    ("val-batch-size", "val-constants",
     [("train_gpt.py", r"val_batch_size: int = 4 \* 64 \* 1024 \* 8", "val_batch_size: int = 2 * 64 * 1024 * 8")]),
    ("val-files", "val-constants", [("train_gpt.py", r"fineweb_val_\*\.bin", "fineweb_val_000001.bin")]),
    ("val-files-through-run.sh", "val-constants",
     [("run.sh", r"\ntorchrun", "\nexport DATA_PATH=/tmp/other\ntorchrun")]),
    ("train-files", "train-files", [("train_gpt.py", r"fineweb_train_\*\.bin", "fineweb_val_*.bin")]),
    ("val-steps", "val-reduce", [("train_gpt.py", r"for _ in range\(val_steps\):", "for _ in range(val_steps // 2):")]),
    ("loss-not-averaged-over-ranks", "val-reduce",
     [("train_gpt.py", r"\n        dist\.reduce\(val_loss, 0, op=dist\.ReduceOp\.AVG\)", "")]),
    ("loss-not-averaged-over-steps", "val-reduce", [("train_gpt.py", r"\n        val_loss /= val_steps", "")]),
    ("timer-scaled", "timing-clock", [("train_gpt.py", STOP, "\n        training_time_ms += 500 * (time.perf_counter() - t0)")]),
    ("timer-not-stopped", "timing-clock", [("train_gpt.py", STOP, "")]),
    ("warmup-optimizer-not-restored", "warmup", [("train_gpt.py", r"\ntraining_manager\.reset\(initial_state\[\"optimizer\"\]\)", "")]),
    ("warmup-model-not-restored", "warmup",
     [("train_gpt.py", r"\nmodel\.load_state_dict\(initial_state\[\"model\"\]\)", ""),
      ("train_gpt.py", r"\ntraining_manager\.reset\(initial_state\[\"optimizer\"\]\)", "")]),
    ("fixed-steps-early-stop", "fixed-steps",
     [("train_gpt.py", r"(\n        dist\.reduce\(val_loss, 0, op=dist\.ReduceOp\.AVG\))",
       "\\1\n        if val_loss < 3.28:\n            break")]),
    ("run.sh-installs", "run-deps", [("run.sh", r"\ntorchrun", "\npip install -U torch\ntorchrun")]),
    ("run.sh-launch-shape", "launch-shape", [("run.sh", r"--nproc_per_node=8", "--nproc_per_node=4")]),
]


def cmd_cheats(args: argparse.Namespace) -> int:
    """Each cheat applied to a copy of a real anchor (outside the repository), checked against that anchor."""
    import re
    import shutil
    import tempfile

    from nanogpt_tui.validator.rules import check_rules

    anchor = Path(args.out) / args.anchor
    rows = []
    with tempfile.TemporaryDirectory(prefix="ngt-cheats-") as scratch:
        for name, rule, edits in CHEATS:
            candidate = Path(scratch) / name
            shutil.copytree(anchor, candidate)
            applicable = True
            for file, pattern, replacement in edits:
                if not (candidate / file).is_file():
                    applicable = False
                    break
                text = (candidate / file).read_text(encoding="utf-8")
                if len(re.findall(pattern, text)) != 1:
                    applicable = False
                    break
                (candidate / file).write_text(re.sub(pattern, replacement, text, count=1), encoding="utf-8")
            if not applicable:
                rows.append({"cheat": name, "rule": rule, "result": "not applicable"})
                continue
            print(f"checking {name}", file=sys.stderr, flush=True)
            report = check_rules(anchor, candidate)
            rules = sorted({v.rule for v in report.violations})
            judged = sorted({q.rule for q in report.needs_judge})
            rows.append({"cheat": name, "rule": rule, "result": "caught" if rule in rules else
                         ("needs the judge" if rule in judged else "MISSED"), "violations": rules})
    caught = sum(r["result"] == "caught" for r in rows)
    applicable = sum(r["result"] != "not applicable" for r in rows)
    if args.json:
        print(json.dumps({"anchor": args.anchor, "caught": caught, "applicable": applicable, "cheats": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['result']:15} {r['cheat']:40} expected {r['rule']:18} got {', '.join(r.get('violations', []))}")
        print(f"\ncheats caught against {args.anchor}: {caught}/{applicable} applicable")
    return 0 if caught == applicable else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path, help="bare git directory of a KellerJordan/modded-nanogpt snapshot")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("manifest", help="fill code_files (and the stack columns) from the logs")
    p.add_argument("--write", action="store_true", help="rewrite human_baselines/records.tsv")
    p.set_defaults(func=cmd_manifest)
    p = sub.add_parser("fetch", help="fetch every record with code into OUT")
    p.add_argument("--out", required=True, help="folder outside the repository for the record folders")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("rules", help="static rules on consecutive pairs and against each anchor")
    p.add_argument("--out", required=True, help="the folder `fetch` wrote")
    p.add_argument("--jobs", type=int, default=1, help="processes checking in parallel (each reads folders once)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rules)
    p = sub.add_parser("cheats", help="each rule's cheat applied to a real anchor, checked against it")
    p.add_argument("--out", required=True, help="the folder `fetch` wrote")
    p.add_argument("--anchor", default="2026-07-17_FP8DownProjection")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cheats)
    args = parser.parse_args(argv)
    if args.command == "fetch" and Path(args.out).resolve().is_relative_to(REPO):
        parser.error("--out must be outside the repository: real record code is never written inside it")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
