"""`nanogpt-tui submit` (validate a submission) and `nanogpt-tui stats` (statistics of run logs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nanogpt_tui.cli.common import SECONDS, config_from, number, print_json
from nanogpt_tui.contract.env import ENV_ANCHOR_DIR, ENV_EVENTS_PATH, ENV_WORKSPACE
from nanogpt_tui.errors import UserError
from nanogpt_tui.contract.env import ENV_EVENTS_PATH, ENV_VALIDATOR_DIR, ENV_WORKSPACE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit", help="validate a submission: rules, judge, retiming, statistics, verdict",
        description="Validate a candidate folder (train_gpt.py, run.sh): static rule checks against the anchor, "
                    "the LLM judge, N retimings, statistics; writes a verdict JSON to the session's verdicts/ "
                    "folder and prints it. Exits 0 only for a valid, significant, comparable submission.")
    p.add_argument("dir", metavar="DIR", type=Path, help="the submission folder, e.g. submissions/submission_1")
    p.add_argument("--runs", type=number(integer=True, minimum=1, maximum=1000), help="number of retimings (default: validation.runs, 10)")
    p.add_argument("--judge", choices=("anthropic", "openai", "none"),
                   help="judge provider (default: judge.provider); none skips the judge and the verdict says so")
    p.add_argument("--anchor", type=Path, metavar="DIR",
                   help=f"the anchor record's folder (default: ${ENV_ANCHOR_DIR}, /runner/anchor, "
                        "or human_baselines/<benchmark.anchor>)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help=f"folder linked in as data/ for the runs (default: ${ENV_WORKSPACE}/data or ./data)")
    p.add_argument("--verdicts", type=Path, metavar="DIR",
                   help=f"where to write the verdict (default: ${ENV_WORKSPACE}/verdicts)")
    p.add_argument("--val-loss-target", type=number(positive=True, maximum=100.0), metavar="X",
                   help="val_loss target (default: the anchor's record.toml, else benchmark.val_loss_target)")
    p.add_argument("--run-timeout", type=SECONDS, metavar="S", help="seconds one run may take")
    p.add_argument("--baseline", action="store_true",
                   help="retime the anchor itself (DIR is the anchor's code) as the session's same-hardware "
                        "reference for speedups; skips rules and judge")
    p.add_argument("--json", action="store_true", help="print the verdict JSON instead of the summary")
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser(
        "stats", help="statistics of training logs (p-value, mean time, CI)",
        description="Read training logs (each file one run, in the speedrun's format, including logs whose first "
                    "part is the code) and print the one-sided t-test p-value that mean val_loss is below the "
                    "target, and the mean, standard deviation and 95%% CI of train_time.")
    p.add_argument("logs", metavar="LOG", nargs="+", type=Path)
    p.add_argument("--val-loss-target", type=number(positive=True, maximum=100.0), metavar="X",
                   help="default: the target of the record whose code the logs begin with (its record.toml), "
                        "else of the record that code derives from (the nearest record's code, as a submission's), "
                        "else benchmark.val_loss_target (3.28)")
    p.add_argument("--group", action="store_true",
                   help="logs of different code: statistics for each program (without it they are refused)")
    p.add_argument("--json", action="store_true",
                   help='print {"n", "p_value", "mean_val_loss", "mean_train_time_ms", "std_train_time_ms", '
                        '"ci95_train_time_ms"}')
    p.set_defaults(func=cmd_stats)


def cmd_submit(args: argparse.Namespace) -> int:
    from nanogpt_tui.records import load_timeline
    from nanogpt_tui.validator.submit import describe, headline, resolve_plan, run_submit

    env = dict(os.environ)
    if env.get(ENV_VALIDATOR_DIR) and env.get(ENV_WORKSPACE) and args.verdicts is None:
        return _submit_request(args, env)
    config = config_from(args)
    anchor_dir = args.anchor
    if args.baseline and anchor_dir is None:
        anchor_dir = args.dir
    plan = resolve_plan(args.dir, config, env=env, anchor_dir=anchor_dir, runs=args.runs, judge=args.judge,
                        data_dir=args.data, verdicts_dir=args.verdicts, val_loss_target=args.val_loss_target,
                        run_timeout_s=args.run_timeout, kind="baseline" if args.baseline else "submission")
    try:
        timeline = load_timeline(config.paths.baselines_dir)
    except UserError as err:
        print(f"warning: {err} Speedups will not be scored as % of human progress.", file=sys.stderr)
        timeline = None
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    events_path = env.get(ENV_EVENTS_PATH)
    if events_path:
        from nanogpt_tui.agents.events import append_event

        append_event(events_path, "submission_started", submission=plan.candidate_dir.name,
                     text="baseline retiming of the anchor" if plan.kind == "baseline" else None)
    verdict, path = run_submit(plan, config, timeline=timeline, env=env, on_progress=progress)
    if events_path:
        append_event(events_path, "verdict", submission=verdict.submission, outcome=verdict.outcome,
                     verdict_path=str(path), counts=verdict.counts,
                     mean_train_time_ms=verdict.stats.get("mean_train_time_ms"),
                     p_value=_finite_or_none(verdict.stats.get("p_value")), text=headline(verdict))
    if args.json:
        print_json(verdict.to_dict())
    else:
        print(describe(verdict))
        print(f"verdict written to {path}")
    if plan.kind == "baseline":
        return 0 if verdict.outcome == "baseline" else 1
    return 0 if verdict.counts else 1


def _submit_request(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Inside a session: ask the validator apart from the agent, print its progress, block until its answer."""
    from nanogpt_tui.validator import protocol as P
    from nanogpt_tui.validator.client import request_and_wait
    from nanogpt_tui.validator.submit import headline

    workspace, vdir = Path(env[ENV_WORKSPACE]), Path(env[ENV_VALIDATOR_DIR])
    submissions = (workspace / "submissions").resolve()
    folder = args.dir if args.dir.is_absolute() else Path.cwd() / args.dir
    if args.baseline:
        name, kind = "anchor", "baseline"
    else:
        if folder.resolve().parent != submissions or not folder.is_dir():
            raise UserError(f"{args.dir} is not a folder under {workspace / 'submissions'}; copy train_gpt.py and "
                            "run.sh into submissions/submission_N and submit that.")
        name, kind = folder.resolve().name, "submission"
    for flag, value in (("--judge", args.judge), ("--anchor", args.anchor), ("--data", args.data),
                        ("--val-loss-target", args.val_loss_target), ("--run-timeout", args.run_timeout)):
        if value is not None:
            print(f"note: {flag} is set by the validator in a session; ignored", file=sys.stderr)
    request = P.SubmitRequest(request_id=P.new_request_id(name), submission=name, kind=kind, runs=args.runs,
                              requested_at=P.utc_now())
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    events_path = env.get(ENV_EVENTS_PATH)
    if events_path:  # the agent's own stream: shown in the control room, never read for scores
        from nanogpt_tui.agents.events import append_event

        append_event(events_path, "submission_started", submission=name,
                     text="baseline retiming of the anchor" if kind == "baseline" else None)
    progress(f"submitted {name} to the validator (request {request.request_id}); waiting for its verdict")
    response = request_and_wait(workspace, vdir, request, on_progress=progress)
    path = vdir / P.VERDICTS / response["verdict_file"] if response.get("verdict_file") else None
    if events_path:
        fields = {}
        if path is not None and path.is_file():
            from nanogpt_tui.validator.verdict import read_verdict

            verdict = read_verdict(path)
            fields = dict(outcome=verdict.outcome, verdict_path=str(path), counts=verdict.counts,
                          mean_train_time_ms=verdict.stats.get("mean_train_time_ms"),
                          p_value=_finite_or_none(verdict.stats.get("p_value")), text=headline(verdict))
        else:
            fields = dict(outcome="refused", text=str(response.get("text")))
        append_event(events_path, "verdict", submission=name, **fields)
    if args.json and path is not None and path.is_file():
        print(path.read_text(encoding="utf-8"), end="")
    else:
        print(response.get("text", ""))
        if path is not None:
            print(f"verdict written to {path}")
    code = response.get("exit_code")
    return code if isinstance(code, int) else 1


def _finite_or_none(value):
    import math

    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def cmd_stats(args: argparse.Namespace) -> int:
    from nanogpt_tui.validator.runlog import read_run_logs
    from nanogpt_tui.validator.stats import log_stats

    config = config_from(args)
    logs = read_run_logs(args.logs)
    groups: dict[str | None, list] = {}
    for log in logs:
        groups.setdefault(log.code, []).append(log)
    if len(groups) > 1 and not args.group:
        sizes = ", ".join(f"{len(g)} ({_code_name(code, config)})" for code, g in groups.items())
        raise UserError(f"The {len(logs)} logs come from {len(groups)} different programs ({sizes}), so their "
                        "statistics would mix different code; pass the logs of one program, or --group for each.")
    results = []
    for code, group in groups.items():
        target, source = _loss_target(args, code, config)
        if len(group) < 2:
            only = group[0].final
            raise UserError(f"A p-value and a confidence interval need at least two runs and {group[0].path} is the "
                            f"only log of its program (val_loss {only.val_loss:.4f}, train_time "
                            f"{only.train_time_ms:.0f} ms); pass the logs of several runs.")
        result = log_stats([g.final.val_loss for g in group], [g.final.train_time_ms for g in group], target)
        results.append((code, target, source, result))
    if args.json:
        rows = [dict(r.to_dict(), val_loss_target=target, target_from=source, program=_code_name(code, config))
                for code, target, source, r in results]
        print_json(rows if args.group else rows[0])
        return 0
    for code, target, source, result in results:
        if args.group:
            print(f"{_code_name(code, config)}:")
        lo, hi = result.ci95_train_time_ms
        print(f"runs: {result.n}")
        print(f"mean val_loss: {result.mean_val_loss:.4f}  p val_loss (mean < {target}, {source}): "
              f"{result.p_value:.4g}")
        print(f"mean train_time: {result.mean_train_time_ms:.1f} ms  std {result.std_train_time_ms:.1f} ms  "
              f"95% CI [{lo:.1f}, {hi:.1f}] ms")
    return 0


def _record_dirs(config) -> list[Path]:
    root = config.paths.baselines_dir
    return sorted(p.parent for p in Path(root).glob("*/train_gpt.py")) if Path(root).is_dir() else []


def _matching_record(code: str | None, config) -> Path | None:
    """The record folder in human_baselines/ whose train_gpt.py is the code a log begins with."""
    if code is None:
        return None
    for folder in _record_dirs(config):
        try:
            if (folder / "train_gpt.py").read_text(encoding="utf-8").rstrip("\n") + "\n" == code:
                return folder
        except (OSError, UnicodeDecodeError):
            continue
    return None


def _nearest_record(code: str, config) -> tuple[Path, int] | None:
    """The record folder whose train_gpt.py is nearest to `code` (a candidate derived from it) and how many lines
    differ; None when even the nearest shares less than half of its lines with the code (no record's descendant)."""
    from nanogpt_tui.classify import code_distance

    best: tuple[Path, int] | None = None
    for folder in _record_dirs(config):
        try:
            other = (folder / "train_gpt.py").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        distance = code_distance({"train_gpt.py": code}, {"train_gpt.py": other})
        if best is None or distance < best[1]:
            best = (folder, distance)
    lines = sum(1 for line in code.splitlines() if line.strip())
    return best if best is not None and best[1] <= lines / 2 else None


def _code_name(code: str | None, config) -> str:
    if code is None:
        return "logs without their code"
    folder = _matching_record(code, config)
    if folder is not None:
        return f"record {folder.name}"
    import hashlib

    return f"code {hashlib.sha256(code.encode()).hexdigest()[:12]}"


def _loss_target(args: argparse.Namespace, code: str | None, config) -> tuple[float, str]:
    """The val_loss target and where it came from: --val-loss-target, else the record the logs ran (its
    record.toml), else the record the logs' code derives from (the nearest record's code: a submission's logs run
    the anchor's code with changes, and are held to the anchor's target), else benchmark.val_loss_target."""
    from nanogpt_tui.validator.submit import record_metadata

    if args.val_loss_target is not None:
        return args.val_loss_target, "--val-loss-target"
    folder = _matching_record(code, config)
    if folder is not None:
        meta = record_metadata(folder)
        if "val_loss_target" in meta:
            return float(meta["val_loss_target"]), f"{folder.name}'s record.toml"
    nearest = _nearest_record(code, config) if code is not None else None
    if nearest is not None:
        meta = record_metadata(nearest[0])
        if "val_loss_target" in meta:
            return float(meta["val_loss_target"]), (f"{nearest[0].name}'s record.toml: the nearest record's code, "
                                                    f"{nearest[1]} line(s) from the logs'")
    return config.benchmark.val_loss_target, "benchmark.val_loss_target"
