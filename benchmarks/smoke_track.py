"""Time the smoke track's records with the validator's retiming, interleaved, and test each against its predecessor.

Every round runs each record once (`nanogpt_tui.validator.retime.retime`, the code `submit` times with), either one
after another (a small, shared machine) or all at once, each record in its own process pinned to its own CPU core
(`--concurrent`, a machine with a core to spare per record), so slow spells of the machine fall on every record
alike. Rounds continue until `--rounds` are done or `--budget-s` seconds have passed. Then, per record: the mean
final train_time over its runs, the one-sided t-test that its val_loss is below the target, and Welch's one-sided
test that it is faster than the record before it (`validator.stats.faster_test`). The GPU stays out of it
(`CUDA_VISIBLE_DEVICES=`): the smoke track is timed on the CPU, where the demo runs.

    python benchmarks/smoke_track.py --out benchmarks/results/smoke_track [--rounds 10] [--budget-s S] [--concurrent]
                                     [--write]
    python benchmarks/smoke_track.py --write-from benchmarks/results/smoke_track/results.json

It writes `results.json` (every run, the statistics, the machine and its load average around each run) and prints
the manifest's time and hardware for each record; with `--write`, it puts them into human_baselines/records.tsv
(record_time_s, the note with the run count and Welch's p, hardware with the load) when no run failed, and exits 1
when a record's val_loss or its speedup over the one before it is not significant (the note then says so).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.records import SMOKE_TRACK, ensure_record_code, load_timeline  # noqa: E402
from nanogpt_tui.validator.retime import RunOutcome, retime  # noqa: E402

P_THRESHOLD = 0.01
RUN_TIMEOUT_S = 600.0


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it, with the cores this process may use."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} cores (CPU, 1 thread per run)"


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path of the records, where the demo runs
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # torchrun beside python
    return env


def time_once(args: tuple[str, Path, Path, Path, int, int | None, float]) -> dict:
    """One retiming run of one record (in a worker process when concurrent), as a RunOutcome dict."""
    name, code_dir, data_dir, logs_dir, round_no, core, target = args
    if core is not None:
        os.sched_setaffinity(0, {core})  # the run's processes inherit it
    work = logs_dir.parent / f".work-{name}-{round_no}"
    load_before = os.getloadavg()[0]
    result = retime(code_dir, runs=1, work_dir=work, logs_dir=logs_dir / f"round_{round_no:02d}", data_dir=data_dir,
                    val_loss_target=target, p_value_threshold=P_THRESHOLD, timeout_s=RUN_TIMEOUT_S, env=run_env())
    return {**result.runs[0].to_dict(), "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "smoke_track")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting rounds after this many seconds")
    parser.add_argument("--concurrent", action="store_true", help="all records at once, one CPU core each")
    parser.add_argument("--records", nargs="*", help="record names (default: the whole smoke track)")
    parser.add_argument("--write", action="store_true", help="put the figures into human_baselines/records.tsv")
    parser.add_argument("--write-from", type=Path, metavar="RESULTS_JSON",
                        help="only put an earlier run's figures (its results.json) into the manifest")
    args = parser.parse_args()
    if args.write_from:
        result = json.loads(args.write_from.read_text())
        return write_manifest(REPO / "human_baselines" / "records.tsv", result["records"], result)

    from nanogpt_tui.shards import synthesize
    from nanogpt_tui.validator.stats import faster_test, loss_p_value, summarize_times

    baselines = REPO / "human_baselines"
    timeline = load_timeline(baselines)
    records = [timeline.get(n) for n in args.records] if args.records else timeline.track(SMOKE_TRACK)
    import tomllib

    # Our own records are written from human_baselines/our_records.toml (checked against the manifest's sha256).
    folders = {r.name: ensure_record_code(timeline, r.name, baselines)[0] for r in records}
    targets = {r.name: tomllib.loads((folders[r.name] / "record.toml").read_text())["val_loss_target"]
               for r in records}
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = args.out / "data"
    if not (data_dir / "fineweb10B" / "synth.json").is_file():
        synthesize(data_dir / "fineweb10B")
    cores = sorted(os.sched_getaffinity(0))
    if args.concurrent and len(cores) < len(records):
        parser.error(f"--concurrent needs a core per record ({len(records)}), this process may use {len(cores)}")
    runs: dict[str, list[dict]] = {r.name: [] for r in records}
    started = time.monotonic()
    pool = multiprocessing.get_context("spawn").Pool(len(records)) if args.concurrent else None
    try:
        for round_no in range(1, args.rounds + 1):
            if args.budget_s is not None and round_no > 1 and time.monotonic() - started > args.budget_s:
                break
            jobs = [(r.name, folders[r.name], data_dir, args.out / r.name, round_no,
                     cores[i] if args.concurrent else None, targets[r.name]) for i, r in enumerate(records)]
            outcomes = pool.map(time_once, jobs) if pool else [time_once(job) for job in jobs]
            for record, outcome in zip(records, outcomes):
                runs[record.name].append(outcome)
                o = RunOutcome.from_dict(outcome)
                shown = f"{o.train_time_ms / 1000:.3f} s val_loss {o.val_loss:.4f}" if o.ok else o.error
                print(f"round {round_no} {record.name}: {shown}", flush=True)
    finally:
        if pool:
            pool.close()
            pool.join()

    loads = [d[k] for v in runs.values() for d in v for k in ("load_before", "load_after")]
    load = f"load average {min(loads):.0f}-{max(loads):.0f} while timed" if loads else "load not recorded"
    hardware = f"{cpu_model()}, {load}"
    summary = []
    previous: tuple[str, list[float]] | None = None
    for record in records:
        ok = [RunOutcome.from_dict(d) for d in runs[record.name] if d["status"] == "ok"]
        times = [o.train_time_ms for o in ok]
        losses = [o.val_loss for o in ok]
        t = summarize_times(times)
        row = {"name": record.name, "n": t.n, "failed": len(runs[record.name]) - len(ok),
               "mean_train_time_ms": t.mean_ms, "std_train_time_ms": t.std_ms, "ci95_train_time_ms": list(t.ci95_ms),
               "mean_val_loss": sum(losses) / len(losses) if losses else None,
               "p_val_loss": loss_p_value(losses, targets[record.name]), "val_loss_target": targets[record.name]}
        if previous is not None and len(times) >= 2 and len(previous[1]) >= 2:
            test = faster_test(times, baseline=previous[0], baseline_runs_ms=previous[1], alpha=P_THRESHOLD)
            row["faster_than"] = previous[0]
            row["p_faster"] = test.p_value
            row["seconds_faster"] = test.difference_ms / 1000
        summary.append(row)
        previous = (record.name, times)
    result = {"schema_version": 1, "hardware": hardware, "mode": "concurrent" if args.concurrent else "interleaved",
              "python": sys.version.split()[0], "torch": _torch_version(), "rounds": max(len(v) for v in runs.values()),
              "wall_s": round(time.monotonic() - started, 1), "records": summary, "runs": runs}
    (args.out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nhardware: {hardware}; {result['rounds']} rounds, {result['mode']}, {result['wall_s']} s")
    print(f"{'record':22} {'n':>3} {'train_time s':>14} {'val_loss':>8} {'p val_loss':>10} {'p faster':>9}")
    for row in summary:
        mean = row["mean_train_time_ms"] / 1000
        print(f"{row['name']:22} {row['n']:>3} {mean:>8.3f} ±{row['std_train_time_ms'] / 1000:.3f} "
              f"{row['mean_val_loss'] or float('nan'):>8.4f} {row['p_val_loss']:>10.2g} "
              f"{row.get('p_faster', float('nan')):>9.2g}")
    if args.write:
        return write_manifest(baselines / "records.tsv", summary, result)
    return 0


def write_manifest(path: Path, summary: list[dict], result: dict) -> int:
    """The track's times, notes and hardware into the manifest, in place (other rows and columns untouched)."""
    problems = [f"{row['name']}: val_loss p = {row['p_val_loss']:.2g}" for row in summary
                if not row["p_val_loss"] < P_THRESHOLD]
    problems += [f"{row['name']}: p faster = {row['p_faster']:.2g}" for row in summary
                 if "p_faster" in row and not row["p_faster"] < P_THRESHOLD]
    if any(row["failed"] for row in summary):
        print("not written: a run failed", file=sys.stderr)
        return 1
    rows = {row["name"]: row for row in summary}
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    out = [lines[0]]
    for line in lines[1:]:
        cells = dict(zip(header, line.split("\t")))
        row = rows.get(cells["name"])
        if row is None:
            out.append(line)  # other rows stay byte for byte
            continue
        cells["record_time_s"] = f"{row['mean_train_time_ms'] / 1000:.2f}"
        together = ("each run at the same time as the track's other records, one core each"
                    if result.get("mode") == "concurrent" else "interleaved with the track's other records")
        cells["note"] = (f"our own record; mean train_time of {row['n']} runs timed by benchmarks/smoke_track.py, "
                         f"{together}")
        if "p_faster" in row:
            faster = "faster" if row["p_faster"] < P_THRESHOLD else "NOT significantly faster in this run"
            cells["note"] += f"; {faster} than {row['faster_than']} (Welch p = {row['p_faster']:.1e})"
        cells["hardware"] = result["hardware"].replace("(CPU, 1 thread per run)",
                                                       f"(CPU, torch {result['torch'].split('+')[0]}, 1 thread per run)")
        out.append("\t".join(cells.get(h, "") for h in header))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"written to {path}")
    if problems:  # written as measured, the notes say so; the track's promise is not kept
        print(f"not significant at p < {P_THRESHOLD:g}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
