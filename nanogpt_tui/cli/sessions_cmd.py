"""`nanogpt-tui run` and `nanogpt-tui sessions ...`: launch, list, show, kill, extend and tail sessions headlessly."""

from __future__ import annotations

import argparse
import sys
import time

from nanogpt_tui.backends import BACKEND_KINDS, DEFAULT_BACKEND
from nanogpt_tui.cli.common import DOLLARS, GPU_COUNT, GPU_HOURS, config_from, number, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="start an agent session",
        description="Start an agent session on the anchor record and print its id. With --wait, follow it to the "
                    "end (enforcing its deadline) and exit with its status: 0 exited or out-of-budget, 1 otherwise.")
    p.add_argument("--agent", required=True, help="agent name (`nanogpt-tui agents list`)")
    p.add_argument("--strategy", default="default", help="prompting strategy name or folder (default: default)")
    p.add_argument("--record", help="anchor record (default: benchmark.anchor)")
    p.add_argument("--target", help="100%% target record (default: benchmark.target)")
    p.add_argument("--budget-gpu-hours", type=GPU_HOURS, metavar="H", help="compute budget (default: benchmark.budget_gpu_hours)")
    p.add_argument("--gpus", type=GPU_COUNT, metavar="N", help="GPUs for the session (default: benchmark.gpus_per_session; 1 for local)")
    p.add_argument("--backend", choices=BACKEND_KINDS, default=DEFAULT_BACKEND,
                   help=f"where it runs (default: {DEFAULT_BACKEND})")
    p.add_argument("--host", help="Docker: a host name from the config (default: the pool places the session on a "
                                  "host with enough free GPUs); Slurm: the partition (default: slurm.partition)")
    p.add_argument("--image", help="image tag (default: docker.image)")
    p.add_argument("--sandbox", choices=("on", "off"), default=None,
                   help="on (the default with Docker): the sandbox holds the agent; off: run it without one, the one "
                        "explicit opt-out a real agent (claude, codex, claude-autoresearch) needs on the local "
                        "backend; recorded in session.json and shown as 'not sandboxed'")
    p.add_argument("--allow-env-mismatch", action="store_true",
                   help="start even where the image's stack differs from the anchor's in a must-match field "
                        "(PyTorch major.minor, CUDA major, Triton, the FlashAttention source); recorded in the "
                        "session and its reports")
    p.add_argument("--wait", action="store_true", help="follow the session until it ends")
    p.add_argument("--queue", action="store_true",
                   help="when the one chosen Docker host (--host, or the only one configured) cannot be reached, "
                        "wait for it (pending) instead of failing")
    p.add_argument("--budget-usd", type=DOLLARS, metavar="USD",
                   help="stop the session once its agent and judge have spent this many dollars (at the config's "
                        "prices), as the GPU-hour budget stops it")
    p.set_defaults(func=cmd_run)

    parser = subparsers.add_parser("sessions", help="list, inspect and steer sessions",
                                   description="List, inspect and steer sessions.")
    sub = parser.add_subparsers(dest="sessions_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="one row per session", description="List sessions with status and budget.")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one session in full", description="Show a session's metadata and history.")
    p.add_argument("id", metavar="ID", help="session id (or a unique prefix)")
    p.add_argument("--json", action="store_true", help="print session.json plus budget figures")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("kill", help="stop a session now", description="Stop a session now and mark it killed.")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser("extend", help="add GPU-hours to a live session",
                       description="Add GPU-hours (or wall-clock hours) to a live session; the deadline moves and "
                                   "the agent loop and watchdog honour it without a restart.")
    p.add_argument("id", metavar="ID")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--gpu-hours", type=GPU_HOURS, metavar="H")
    group.add_argument("--wall-hours", type=GPU_HOURS, metavar="H", help="wall-clock hours (x the session's GPUs)")
    p.set_defaults(func=cmd_extend)
    p = sub.add_parser("transcript", help="a session's turns: messages, tool calls with outputs, tokens, verdicts",
                       description="Print a session's transcript as the control room's Transcript tab shows it: "
                                   "the agent's turns with messages, reasoning, tool calls and their outputs, "
                                   "errors, per-turn tokens and cost (as the CLI reported it), submissions and "
                                   "verdicts in place. --json exports {\"turns\": [...]} for scripts.")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help='print {"schema_version", "session", "turns": [...]}')
    p.set_defaults(func=cmd_transcript)
    p = sub.add_parser("diff", help="the diff between two versions of a session's code, with each hunk's kind",
                       description="A unified diff between two versions of a session's code, each hunk marked "
                                   "with its kind of change (hyperparameter, algorithmic, systems, neutral). "
                                   "A and B name submissions (submission_2), experiments (03_lr, or 03) or anchor.")
    p.add_argument("id", metavar="ID")
    p.add_argument("a", metavar="A", help="anchor, submission_N or an experiment")
    p.add_argument("b", metavar="B", help="anchor, submission_N or an experiment")
    p.add_argument("--side-by-side", action="store_true", help="old and new side by side")
    p.add_argument("--width", type=number(integer=True, minimum=60), default=160, metavar="N",
                   help="line width for --side-by-side (default 160)")
    p.add_argument("--json", action="store_true", help='print {"a", "b", "hunks": [{"file", "header", "kind", "lines"}]}')
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("logs", help="print a session's container.log as the control room shows it",
                       description="Print a session's container.log as the control room's Log pane shows it "
                                   "(agent events as readable lines); --follow keeps printing new lines.")
    p.add_argument("id", metavar="ID")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing as the session writes")
    p.add_argument("--tail", type=number(integer=True, minimum=0), metavar="N", help="only the last N lines")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--only", choices=LOG_FILTER_NAMES, default="all",
                   help="only these lines, as the Log pane's `t` filter shows them (default: all)")
    shown.add_argument("--raw", action="store_true", help="each line as written (agent JSON not rendered; escape "
                                                      "sequences still stripped and keys masked)")
    p.set_defaults(func=cmd_logs)


# The Log pane's filters (`nanogpt_tui.tui.data.logrender.LOG_FILTERS`, checked equal by a test): spelled here so
# building the parser imports nothing.
LOG_FILTER_NAMES = ("all", "agent", "tools", "submissions", "errors", "usage", "output")


def _manager(args):
    from nanogpt_tui.sessions.manager import SessionManager

    return SessionManager(config_from(args))


def _left(summary: dict) -> str:
    """Time left for a live session; `ended HH:MM` (UTC) for one that ended."""
    if summary.get("ended_at"):
        return f"ended {summary['ended_at'][11:16]}"
    return _hours(summary["seconds_left"])


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def cmd_run(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import LaunchRequest

    manager = _manager(args)
    session = manager.launch(LaunchRequest(
        agent=args.agent, strategy=args.strategy, anchor=args.record, target=args.target,
        budget_gpu_hours=args.budget_gpu_hours, gpus=args.gpus, backend=args.backend, host=args.host,
        image=args.image, sandbox=args.sandbox, allow_env_mismatch=args.allow_env_mismatch, queue=args.queue,
        budget_usd=args.budget_usd))
    print(session.id)
    check = session.env_check or {}
    if check.get("allowed") and check.get("status") != "match":
        print(f"warning: started with --allow-env-mismatch: {check.get('reason')}", file=sys.stderr)
    if session.status == "pending":
        print(f"pending: {session.status_reason}", file=sys.stderr)
    if not args.wait:
        return 0
    final = manager.wait(session.id)
    print(f"{final.id}: {final.status} ({final.status_reason})", file=sys.stderr)
    return 0 if final.status in ("exited", "out-of-budget") else 1


def cmd_list(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import session_summary
    from nanogpt_tui.telemetry.activity import read_activity

    manager = _manager(args)
    scan = manager.scan()
    problems = list(scan.strays)
    summaries = []
    for s in scan.sessions:
        try:
            s = manager.refresh(s)
        except Exception as err:  # one unreachable backend must not hide the other sessions  # noqa: BLE001
            problems.append(f"{s.id}: could not refresh its status ({err})")
        summary = session_summary(s)
        # What the control room's cards and table show beside the budget: the last activity and the dollars.
        try:
            activity = read_activity(manager.session_dir(s.id))
            cost = manager.cost(s)
        except OSError as err:
            problems.append(f"{s.id}: could not read its events or verdicts ({err})")
            activity, cost = None, None
        summary["activity"] = activity.to_dict() if activity else None
        summary["cost_usd"] = None if cost is None or cost.total_usd is None else round(cost.total_usd, 6)
        summary["cost"] = cost.to_dict() if cost is not None else None
        summary["budget_usd"] = s.budget_usd
        summaries.append(summary)
    if args.json:
        print_json(summaries + [b.to_dict() for b in scan.broken])
    else:
        from nanogpt_tui.tui.data.formatting import place_text

        rows = [[x["id"], x["status"], place_text(x["backend"], x["host"], x["facts"]), x["gpus"],
                 f"{x['used_gpu_hours']:.3f}/{x['budget_gpu_hours']:g}", _left(x),
                 "-" if x["cost_usd"] is None else f"${x['cost_usd']:,.2f}",
                 (f"{x['activity']['kind']}: {x['activity']['text']}" if x["activity"] else x["reason"])[:60]]
                for x in summaries]
        rows += [[b.id, "broken", "-", "-", "-", "-", "-", f"bad field `{b.field}`" if b.field else "unreadable"]
                 for b in scan.broken]
        print_table(["id", "status", "where", "gpus", "GPU-h used/budget", "left", "cost", "activity"], rows)
    for broken in scan.broken:
        print(f"broken: {broken}", file=sys.stderr)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import session_summary

    manager = _manager(args)
    session = manager.refresh(manager.get(args.id))
    if args.json:
        print_json({**session.to_dict(), "summary": session_summary(session)})
        return 0
    x = session_summary(session)
    print(f"{session.id}\n  agent {session.agent} · strategy {session.strategy} ({session.strategy_hash[:12]}) · "
          f"anchor {session.anchor} · target {session.target}")
    print(f"  {session.backend} on {session.host or '(not placed yet)'} · GPUs {session.gpus} {session.gpu_ids or ''}")
    print(f"  status {session.status}: {session.status_reason}")
    if session.facts:
        print("  " + " · ".join(f"{key} {value}" for key, value in sorted(session.facts.items())))
    print(f"  budget {x['used_gpu_hours']:.3f} of {x['budget_gpu_hours']:g} GPU-hours used "
          f"({x['gpu_hours_from']}) · deadline "
          f"{session.deadline or '-'} ({_left(x) if x['ended_at'] else _hours(x['seconds_left']) + ' left'})")
    for t in session.transitions:
        print(f"    {t.at}  {t.status:<13} {t.reason}")
    for e in session.extensions:
        print(f"    {e.at}  extended by {e.gpu_hours:g} GPU-hours {e.reason}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    session = _manager(args).kill(args.id)
    print(f"{session.id}: {session.status} ({session.status_reason})")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    session = _manager(args).extend(args.id, gpu_hours=args.gpu_hours, wall_hours=args.wall_hours)
    print(f"{session.id}: budget {session.total_gpu_hours:g} GPU-hours, deadline {session.deadline}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    # The control room's own tail and line renderer: agent JSON reads as event lines, escape sequences are
    # stripped and keys masked, exactly as the Log pane shows them (`--raw` keeps each line as written).
    from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize
    from nanogpt_tui.contract import layout as L
    from nanogpt_tui.tui.data.logrender import LOG_FILTERS, LogLine, log_line_renderer
    from nanogpt_tui.tui.data.logtail import LogTail

    secrets = tuple(env_secrets())
    if args.raw:
        def render(raw: str) -> list[LogLine]:
            return [LogLine("raw", mask_secrets(sanitize(raw), secrets))]
    else:
        render = log_line_renderer(secrets)
    kinds = LOG_FILTERS[args.only]

    def show(raws) -> None:
        for raw in raws:
            for line in render(raw):
                if kinds is None or line.kind in kinds:
                    sys.stdout.write(line.text + "\n")
        sys.stdout.flush()

    manager = _manager(args)
    session = manager.get(args.id)
    tail = LogTail(manager.session_dir(session.id) / L.CONTAINER_LOG)
    show(tail.open(args.tail) if args.tail else tail.read_all())
    while args.follow:
        lines, restarted = tail.read_new()
        if restarted:
            sys.stdout.write("… (the log was replaced or ran too far ahead; showing its tail)\n")
        if lines:
            show(lines)
            continue
        session = manager.refresh(manager.get(session.id))
        if session.status not in ("running", "pending", "unreachable"):
            show(tail.read_new()[0])  # what was written between the last read and the end
            break
        time.sleep(0.2)
    return 0


OUTPUT_LINES = 20  # lines of a tool's output the text transcript prints


def cmd_transcript(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize, sanitize_lines
    from nanogpt_tui.contract import layout as L
    from nanogpt_tui.tui.data.transcript import read_transcript

    manager = _manager(args)
    session = manager.get(args.id)
    transcript = read_transcript(manager.session_dir(session.id) / L.EVENTS_FILE)
    secrets = tuple(env_secrets())

    def clean(text: str | None) -> str:
        return mask_secrets(sanitize(text or ""), secrets)

    def clean_lines(text: str | None) -> list[str]:
        return [mask_secrets(line, secrets) for line in sanitize_lines((text or "").strip("\n"))]

    if args.json:
        data = transcript.to_dict(session.id)
        for turn in data["turns"]:
            for item in turn["items"]:
                for key in ("text",):
                    if item.get(key) is not None:
                        item[key] = clean(item[key])
                if item.get("tool"):
                    for key in ("command", "input", "output"):
                        if item["tool"].get(key) is not None:
                            item["tool"][key] = clean(item["tool"][key])
        print_json(data)
        return 0
    print(f"{session.id}: {len(transcript.turns)} turns from {transcript.events} events"
          + (f" ({transcript.malformed} unreadable lines)" if transcript.malformed else ""))
    for turn in transcript.turns:
        head = f"\nturn {turn.index}" + (f" · {turn.started_at}" if turn.started_at else "")
        if turn.usage:
            head += (f" · {turn.usage['input_tokens']} in ({turn.usage['cached_input_tokens']} cached) / "
                     f"{turn.usage['output_tokens']} out")
        if turn.cost_usd is not None:
            head += f" · ${turn.cost_usd:.4f} (as the CLI reported)"
        print(head)
        for item in turn.items:
            if item.tool is not None:
                tool = item.tool
                state = "no output yet" if tool.output is None else ("ok" if tool.ok is not False else "failed")
                print(f"  tool {clean(tool.name)} [{state}]: {clean(tool.command or tool.file or tool.input)}")
                if tool.output:
                    lines = clean_lines(tool.output)
                    for line in lines[:OUTPUT_LINES]:
                        print(f"    | {line}".rstrip())
                    if len(lines) > OUTPUT_LINES:
                        print(f"    | … {len(lines) - OUTPUT_LINES} more lines (--json has all of it)")
            else:
                lines = clean_lines(item.text) if item.text and item.text.strip() else [
                    f"{item.submission}: {item.outcome}" if item.kind == "verdict"
                    else f"{item.submission} (retiming starts)" if item.kind == "submission" else ""]
                print(f"  {item.kind}: {lines[0]}".rstrip())
                for line in lines[1:]:
                    print(f"    {line}".rstrip())
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize_lines
    from nanogpt_tui.tui.data.diffs import classified_hunks, resolve_version, side_by_side_lines, unified_lines

    manager = _manager(args)
    session = manager.get(args.id)
    root = manager.session_dir(session.id)
    (a_name, a_dir), (b_name, b_dir) = resolve_version(root, args.a), resolve_version(root, args.b)
    hunks = classified_hunks(a_dir, b_dir, a_name, b_name)
    secrets = tuple(env_secrets())
    if args.json:
        print_json({"session": session.id, "a": a_name, "b": b_name, "hunks": [h.to_dict() for h in hunks]})
        return 0
    lines = side_by_side_lines(hunks, a_name, b_name, args.width) if args.side_by_side else \
        unified_lines(hunks, a_name, b_name)
    for line in lines:  # a diff's indentation is its meaning: kept (sanitize alone trims it)
        sys.stdout.write("".join(mask_secrets(part, secrets) for part in sanitize_lines(line)) + "\n")
    return 0
