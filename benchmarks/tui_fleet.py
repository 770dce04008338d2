"""Benchmark: the control room for a fleet, first frames and keys (not a timed test).

Measured on the real `nanogpt-tui` on a pty, each next to a bare Textual app started the same way in the same run:

- first frame: from spawning the process until the screen shows its first content; for the control room, its
  title line and a session of the folder (`re-attach`: N sessions already on disk, their processes alive), and
  the cold demo (`nanogpt-tui demo --fresh` on an empty sessions folder: its title line, then its first session's
  card, which waits for the session's launch);
- key-to-screen with M sessions, under a log flood (`--flood-sessions` of them, default 8, each get
  `--flood-rate` log lines a second, default 2,000, and an agent usage event a second, from `tui_flood.py`'s
  writer, for as long as the keys are pressed; the flooded sessions are the first rows, the ones `down` moves
  through, so the log pane follows a flooded log): `T` (cards to table: the table header appears), `s` (the sort
  column moves: the header's arrow), `down` in the table (the log title names the next session), the last
  character of a filter word (the title counts the hidden sessions and the one card left is drawn again);
  each from writing the key to the pty until that text is in the app's output, so until the screen shows it;
- the app's memory (RSS) after loading, sampled every second while the keys are pressed (under the flood), and
  after the keys;
- `--memory-minutes N`: the memory of a control room left on the fleet of `--keys-sessions` sessions under the
  flood for N minutes (a round of keys every `--memory-keys-every` seconds: `T`, `down`, `s`, `T`, `down`; 0 for
  none), its RSS sampled every second: the means of the first and the last minute, and the slope of a
  least-squares line over the second half in MB/min (flat memory: a slope near 0); the same for the RSS's
  anonymous and file pages (`/proc/PID/status`), and the memory mappings that grew most from a minute in to the
  end (`/proc/PID/smaps`: `[heap]`, other threads' malloc arenas and Python's object arenas, files). With
  `--allocator-stats` this tree's control room starts through a wrapper of this benchmark's (not a hook of the
  app's) whose thread reports the allocators' own figures a minute in, half-way and at the end (glibc's heap, in
  use and free, by mallinfo2; Python's object arenas and the bytes in their blocks, by sys._debugmallocstats; the
  garbage collector's counts), then runs a full collection (what it frees was garbage in reference cycles waiting
  for one, not a leak) and calls malloc_trim(0): the RSS before and after says how much of the growth was memory
  freed but kept. The wrapper also counts the widgets the app constructs, by class (what it builds and drops as it
  runs: toasts, say); `--referrers TYPES` says who holds a sample of the objects of those types at the end, after
  the full collection (the chain of referrers, a few levels up); `--no-gc-freeze` makes the app's gc.freeze() a
  no-op, so that what the app froze once loaded is counted too. With `--tracemalloc`, a second control room,
  through the same wrapper with `tracemalloc` on, gives the Python allocations that grew most from the end of the
  first minute to the end, by file:line (its RSS is not the app's own: tracemalloc costs memory);
  `--tracemalloc-only` runs that control room alone.

Both apps run with bytecode caches, as on a user's machine after the first run (an environment that sets
PYTHONDONTWRITEBYTECODE would otherwise recompile every module of ours at each start): the caches go to a folder
of the run (PYTHONPYCACHEPREFIX), filled by one unmeasured start of each app. The load average is printed at the
start and the end: on a shared machine, compare the apps of one run, not runs.

    .venv/bin/python benchmarks/tui_fleet.py [--sessions 24] [--keys-sessions 50] [--repeats 3] [--json]
        [--no-keys] [--keys-only] [--no-demo] [--baseline-tree DIR] [--flood-sessions 8] [--flood-rate 2000]
        [--memory-minutes N [--memory-keys-every 10] [--allocator-stats [--referrers TYPES] [--no-gc-freeze]]
                            [--tracemalloc | --tracemalloc-only]]

`--baseline-tree DIR` (a checkout of an earlier commit, e.g. `git worktree add DIR main`) measures that tree's
control room too, interleaved with this one's in the same run: before and after under the same load (in the memory
mode, one after the other).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tui_common import REPO, Terminal, make_session, percentile, spawn, write_config

sys.path.insert(0, str(REPO))
from nanogpt_tui.validator.protocol import SERVICE_FILE  # noqa: E402
from tests.tui.sessions_data import add_events, add_verdict  # noqa: E402

# Runs the control room under a thread of this benchmark's (the app itself knows nothing of it), for the memory mode's
# `--tracemalloc` and `--allocator-stats`: when the benchmark asks, by a file NAME.want in the folder
# TUI_FLEET_SNAPSHOTS, it writes the allocators' own figures to NAME.stats.json there (glibc's mallinfo2: its heap, what
# of it is in use and free; Python's object allocator, from sys._debugmallocstats: arenas and the bytes in their blocks;
# the objects the cycle collector tracks, by type: those the app froze once loaded are not among them, so a type's count
# also grows as frozen objects are replaced by new ones), with tracemalloc on (TUI_FLEET_TRACEMALLOC=1) a snapshot of
# the Python allocations to NAME.snap; for a NAME that ends in `-gc` it first runs a full collection (the objects in
# reference cycles that wait for one are not a leak), and for `-trim` it first hands glibc's free memory back to the
# system (malloc_trim(0)), so the RSS after it says how much of the creep was memory freed but kept.
TRACEMALLOC_WRAPPER = '''
import ctypes, gc, json, os, re, sys, tempfile, threading, time, tracemalloc
from collections import Counter

TRACE = os.environ.get("TUI_FLEET_TRACEMALLOC") == "1"
if TRACE:
    tracemalloc.start(int(os.environ.get("TUI_FLEET_FRAMES", "1")))
folder = os.environ["TUI_FLEET_SNAPSHOTS"]
libc = ctypes.CDLL("libc.so.6")

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc.mallinfo2.restype = MallInfo2

def allocator_stats():
    m = libc.mallinfo2()
    out = {"glibc_malloc": {"heap_bytes": m.arena, "mmapped_bytes": m.hblkhd, "in_use_bytes": m.uordblks,
                            "free_bytes": m.fordblks, "free_at_top_bytes": m.keepcost}}
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    pymalloc = {}
    for line in text.splitlines():
        hit = re.match(r"(# arenas [a-z ]+?|# bytes [a-z ]+?)\\s+=\\s+([\\d,]+)$", line.strip())
        if hit:
            pymalloc[hit.group(1).lstrip("# ").replace(" ", "_")] = int(hit.group(2).replace(",", ""))
        arena = re.match(r"[\\d,]+ arenas \\* ([\\d,]+) bytes/arena", line.strip())
        if arena:
            pymalloc["bytes_per_arena"] = int(arena.group(1).replace(",", ""))
    out["pymalloc"] = pymalloc
    return out

def type_name(o):
    return f"{type(o).__module__}.{type(o).__qualname__}"

if os.environ.get("TUI_FLEET_NO_FREEZE") == "1":
    gc.freeze = lambda: None  # the app's objects stay in the collector's reach, and in gc.get_objects

import textual.widget
created = Counter()  # widgets constructed, by class: what the app builds and drops while it runs
_widget_init = textual.widget.Widget.__init__

def counting_init(self, *args, **kwargs):
    created[type_name(self)] += 1
    _widget_init(self, *args, **kwargs)

textual.widget.Widget.__init__ = counting_init

def describe(o, child):
    """A referrer in a line: its type, and where in it `child` sits (a dict's key, a tuple's index)."""
    kind = type_name(o)
    if isinstance(o, dict):
        keys = [repr(k)[:40] for k, v in o.items() if v is child][:2]
        return f"{kind}[{','.join(keys)}] ({len(o)} keys)"
    if isinstance(o, (tuple, list)):
        at = [i for i, v in enumerate(o) if v is child][:2]
        return f"{kind}@{at} (len {len(o)})"
    return kind

def referrers(kinds, per_kind=6, depth=4, fan=3):
    """For objects of each kind in `kinds`, who holds them: the referrers' chain, `depth` levels up, `fan` wide."""
    out = {}
    objects = gc.get_objects()
    for kind in kinds:
        found = [o for o in objects if type_name(o) == kind]
        step = max(1, len(found) // per_kind)
        trees = []
        for target in found[::step][:per_kind]:
            lines, level = [], [(target, 0)]
            seen = {id(objects), id(found), id(level)}
            while level:
                obj, d = level.pop(0)
                if d >= depth:
                    continue
                held = [r for r in gc.get_referrers(obj) if id(r) not in seen and type(r).__name__ != "frame"]
                for r in held[:fan]:
                    seen.add(id(r))
                    lines.append("  " * d + describe(r, obj) + (f"  (+{len(held) - fan} more)" if len(held) > fan
                                                                 and r is held[fan - 1] else ""))
                    level.append((r, d + 1))
            trees.append(lines)
        out[kind] = {"count": len(found), "sampled": trees}
        del found
    del objects
    return out

def snapshots():
    while True:
        time.sleep(0.2)
        for want in sorted(f for f in os.listdir(folder) if f.endswith(".want")):
            name = os.path.join(folder, want[:-len(".want")])
            collected = None
            if name.endswith("-gc"):
                collected = gc.collect()
            if name.endswith("-trim"):
                libc.malloc_trim(0)
            if TRACE:
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                snap.dump(name + ".tmp")
                del snap
                os.replace(name + ".tmp", name + ".snap")
            with open(name + ".tmp", "w") as out:
                objects = gc.get_objects()
                kinds = Counter(type_name(o) for o in objects)
                del objects
                wanted = [k for k in os.environ.get("TUI_FLEET_REFERRERS", "").split(",") if k]
                json.dump({**allocator_stats(), "gc": {"collected": collected, "counts": gc.get_count(),
                                                      "objects": sum(kinds.values()), "by_type": dict(kinds)},
                           "widgets_created": dict(created),
                           **({"referrers": referrers(wanted)} if wanted and collected is not None else {})}, out)
            os.replace(name + ".tmp", name + ".stats.json")
            os.remove(os.path.join(folder, want))

threading.Thread(target=snapshots, daemon=True).start()
sys.argv[0] = "nanogpt-tui"
from nanogpt_tui.cli import main
raise SystemExit(main())
'''

BARE_APP = '''
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("bare textual app ready")

Bare().run()
'''


def fleet(root: Path, n: int, pid: int) -> list[str]:
    """`n` local sessions whose process is `pid` (alive: the control room re-attaches), each with verdicts,
    usage and a log, as a fleet's folders look after a while."""
    ids = []
    for i in range(n):
        sid = f"20261203T{10 + i // 60:02d}{i % 60:02d}00Z-fleet-{i:02d}"
        d = make_session(root, sid, pid=pid, hours=50.0, started_ago_s=3600.0 + 60 * i)
        add_verdict(d, 1, hours_after_start=0.5, outcome="validated", mean_ms=163_000.0 - 50 * i, p=0.001)
        add_events(d, [(100_000 * (i + 1), 5_000, 0.4)], texts=["trying a shorter warm-down"])
        (d / "container.log").write_text("".join(f"step:{k}/1600 val_loss:3.30 train_time:{k}ms\n"
                                                 for k in range(2000)))
        ids.append(sid)
    return ids


def serving(session_dir: Path) -> bool:
    try:
        return bool(json.loads((session_dir / "validator" / SERVICE_FILE).read_text()).get("serving"))
    except (OSError, ValueError):
        return False


def warm_up(config: Path, root: Path, ids: list[str], size, timeout: float = 300.0) -> None:
    """One unmeasured control room on the fleet, open until every session's validator serves (the first control
    room starts them, a few at a time, as for sessions whose validator is not running), so that no measured run
    shares the machine with starting processes."""
    _ms, term = first_frame(config, (), ids[-1].split("Z-", 1)[1], size)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(serving(root / i) for i in ids):
        time.sleep(0.5)
    term.close()


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def first_frame(config: Path | None, args: tuple[str, ...], text: str, size, exe: list[str] | None = None,
                timeout: float = 60.0) -> tuple[float | None, Terminal]:
    term = Terminal(config, size=size, args=args, argv=exe)
    seen = term.wait_for(text, timeout=timeout)
    return (None if seen is None else (seen - term.started) * 1000), term


def key_ms(term: Terminal, key: str, text: str, timeout: float = 10.0) -> float | None:
    mark = term.mark()
    sent = term.press(key)
    seen = term.wait_for(text, since=mark, timeout=timeout)
    return None if seen is None else (seen - sent) * 1000


def keys_ms(term: Terminal, key: str, texts: list[str], timeout: float = 10.0) -> float | None:
    """From writing `key` until every one of `texts` has appeared in the output after it (the last of them)."""
    mark = term.mark()
    sent = term.press(key)
    seen = [term.wait_for(text, since=mark, timeout=timeout) for text in texts]
    return None if None in seen else (max(seen) - sent) * 1000


def summary(values):
    got = [v for v in values if v is not None]
    return {"n": len(values), "missed": len(values) - len(got),
            "median_ms": round(statistics.median(got), 1) if got else None,
            "p95_ms": round(percentile(got, 0.95), 1) if got else None, "max_ms": round(max(got), 1) if got else None}


def warm_bytecode_caches(tmp: Path, trees: list[Path]) -> None:
    """Bytecode caches in a folder of this run, compiled now (children inherit the environment)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    for tree in trees:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "nanogpt_tui")], check=False,
                       stdout=subprocess.DEVNULL)


def control_room(tree: Path, config: Path, args: tuple[str, ...], text: str, size, timeout: float = 60.0,
                 script: Path | None = None):
    """`python -P -m nanogpt_tui ARGS` from `tree`'s package (-P: not the working folder's, which would come first),
    and the first time `text` shows; with `script`, `python -P SCRIPT ARGS` (a wrapper that runs the app)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    run = [str(script)] if script is not None else ["-m", "nanogpt_tui"]
    try:
        return first_frame(config, (), text, size, exe=[sys.executable, "-P", *run, *args], timeout=timeout)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=24, help="sessions for the re-attach first frame")
    ap.add_argument("--keys-sessions", type=int, default=50, help="sessions for key-to-screen")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presses", type=int, default=30, help="presses of each key")
    ap.add_argument("--size", default="160x48")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-keys", action="store_true", help="first frames only")
    ap.add_argument("--no-demo", action="store_true", help="leave out the cold demo")
    ap.add_argument("--keys-only", action="store_true", help="keys only (no first frames)")
    ap.add_argument("--key-rounds", type=int, default=2, help="control rooms per tree for the keys (ABBA order)")
    ap.add_argument("--flood-sessions", type=int, default=8, help="sessions flooded while the keys are pressed")
    ap.add_argument("--flood-rate", type=int, default=2000, help="log lines a second per flooded session")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout whose control room is measured too")
    ap.add_argument("--memory-minutes", type=float, help="memory mode: RSS of a control room under the flood")
    ap.add_argument("--memory-keys-every", type=float, default=10.0, help="seconds between rounds of keys (0: none)")
    ap.add_argument("--tracemalloc", action="store_true", help="memory mode: also what grew, by file:line")
    ap.add_argument("--tracemalloc-only", action="store_true",
                    help="memory mode: only the control room under tracemalloc (what grew, by file:line)")
    ap.add_argument("--allocator-stats", action="store_true",
                    help="memory mode: this tree's control room reports glibc's and Python's allocator figures")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="memory mode, through the wrapper: the app's gc.freeze() does nothing")
    ap.add_argument("--referrers", default="",
                    help="memory mode, with --allocator-stats: for these types (module.qualname, comma-separated) "
                         "who holds a sample of their objects at the end, after a full collection")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="nanogpt-tui-fleet-"))
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")  # the apps start on the default view, not a user's
    sleeper = subprocess.Popen(["sleep", "3600"])
    result: dict = {"terminal": args.size, "cpus": os.cpu_count(),
                    "load_average_at_start_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    try:
        trees = {"": REPO} | ({"baseline_tree_": args.baseline_tree.resolve()} if args.baseline_tree else {})
        warm_bytecode_caches(tmp, list(trees.values()))
        bare_script = tmp / "bare.py"
        bare_script.write_text(BARE_APP)
        root = tmp / "sessions"
        root.mkdir()
        ids = fleet(root, args.sessions, sleeper.pid)
        config = write_config(tmp, root)  # each folder its own config file: the demo's must not replace this one
        cold_root = tmp / "cold"
        cold_config = write_config(mkdir(tmp / "cold-config"), cold_root)
        demo_config = write_config(mkdir(tmp / "demo-config"), cold_root / "demo")
        if args.memory_minutes:
            return memory_part(args, tmp, trees, sleeper, size, result)
        if args.keys_only:
            return keys_part(args, tmp, trees, sleeper, size, result)
        _ms, term = first_frame(None, (), "bare textual app ready", size, exe=[sys.executable, str(bare_script)])
        term.close()  # unmeasured, as each tree's first start below: the bytecode caches are filled
        warm_up(config, root, ids, size)
        for tree in trees.values():
            control_room(tree, config, (), ids[-1].split("Z-", 1)[1], size)[1].close()
        bare, reattach_rss = [], []
        reattach = {name: [] for name in trees}
        cold = {name: [] for name in trees}
        cold_card = {name: [] for name in trees}
        for r in range(args.repeats):
            ms, term = first_frame(None, (), "bare textual app ready", size, exe=[sys.executable, str(bare_script)])
            bare.append(ms)
            term.close()
            for name, tree in trees.items():
                # The first card: the oldest session.
                ms, term = control_room(tree, config, (), ids[-1].split("Z-", 1)[1], size)
                reattach[name].append(ms)
                time.sleep(2.0)
                if not name:
                    reattach_rss.append(term.rss_mb())
                term.close()
            if args.no_demo:
                continue
            for name, tree in trees.items():
                shutil.rmtree(cold_root, ignore_errors=True)
                cold_root.mkdir()
                ms, term = control_room(tree, cold_config, ("demo", "--fresh"), "control room", size, timeout=120)
                cold[name].append(ms)
                seen = term.wait_for("scripted · ", timeout=120)  # the first demo session's card
                cold_card[name].append(None if seen is None else (seen - term.started) * 1000)
                term.close()
                from nanogpt_tui.config import load_config
                from nanogpt_tui.sessions.manager import SessionManager

                demo = SessionManager(load_config(demo_config))
                for s in demo.list()[0]:
                    if s.is_active:
                        demo.kill(s.id, grace_s=1.0)
        result["first_frame_ms"] = {"bare_textual_app": summary(bare)}
        for name in trees:
            result["first_frame_ms"].update({
                f"{name}control_room_reattach_{args.sessions}_sessions": summary(reattach[name]),
                f"{name}demo_cold": summary(cold[name]),
                f"{name}demo_cold_first_session_card": summary(cold_card[name])})
        result["rss_mb_after_reattach"] = round(statistics.mean(reattach_rss), 1)

        if args.no_keys:
            return finish(result, args.json)
        return keys_part(args, tmp, trees, sleeper, size, result)
    finally:
        sleeper.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def keys_part(args, tmp: Path, trees: dict[str, Path], sleeper, size, result: dict) -> int:
    """Keys with a bigger fleet, under the flood, for each tree one after the other."""
    root50 = tmp / "sessions50"
    root50.mkdir()
    ids50 = fleet(root50, args.keys_sessions, sleeper.pid)
    config50 = write_config(mkdir(tmp / "config50"), root50)
    warm_up(config50, root50, ids50, size)
    # The first rows (oldest first), where the selection starts and `down` moves through.
    flooded = ids50[::-1][:args.flood_sessions]
    result["flood"] = {"sessions": len(flooded), "lines_per_s_per_session": args.flood_rate}
    first_logs = {sid: (root50 / sid / "container.log").read_bytes() for sid in flooded}
    got: dict[str, list] = {name: [] for name in trees}
    for r in range(args.key_rounds):
        # ABBA: neither tree is always the one measured right after the warm-up
        for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
            os.environ["XDG_STATE_HOME"] = str(tmp / f"state-{name or 'this'}-{r}")  # each starts on the default view
            flood = spawn([str(Path(__file__).with_name("tui_flood.py")), "--writer", str(root50), ",".join(flooded),
                           "--rate", str(args.flood_rate), "--seconds", "3600"]) if flooded else None
            try:
                one = keys(trees[name], config50, ids50, args.presses, size)
            finally:
                if flood is not None:
                    flood.terminate()
                    flood.wait()
            for sid in flooded:  # the next control room starts from the same logs
                (root50 / sid / "container.log").write_bytes(first_logs[sid])
            if one is None:
                print("the control room did not draw", file=sys.stderr)
                return 1
            got[name].append(one)
    for name, rounds in got.items():
        per_key = {key: [v for times, _rss in rounds for v in times[key]] for key in rounds[0][0]}
        missed = per_key.pop("filter_missed")
        result[f"{name}key_to_screen_{args.keys_sessions}_sessions"] = {k: summary(v) for k, v in per_key.items()}
        result[f"{name}key_to_screen_{args.keys_sessions}_sessions"]["filter_missed"] = missed
        result[f"{name}rss_mb_{args.keys_sessions}_sessions"] = [rss for _times, rss in rounds]
    result["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    return finish(result, args.json)


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of (seconds, MB) samples, in MB a minute."""
    if len(samples) < 2:
        return None
    mean_t = statistics.mean(t for t, _ in samples)
    mean_m = statistics.mean(m for _, m in samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return None if not var else sum((t - mean_t) * (m - mean_m) for t, m in samples) / var * 60


def memory_part(args, tmp: Path, trees: dict[str, Path], sleeper, size, result: dict) -> int:
    """A control room on the fleet under the flood for `--memory-minutes`, its RSS every second; for each tree one
    after the other, then (`--tracemalloc`) this tree's again under tracemalloc."""
    root = tmp / "sessions-memory"
    root.mkdir()
    ids = fleet(root, args.keys_sessions, sleeper.pid)
    config = write_config(mkdir(tmp / "config-memory"), root)
    warm_up(config, root, ids, size)
    flooded = ids[::-1][:args.flood_sessions]
    first_logs = {sid: (root / sid / "container.log").read_bytes() for sid in flooded}
    result["flood"] = {"sessions": len(flooded), "lines_per_s_per_session": args.flood_rate}
    result["memory"] = {"minutes": args.memory_minutes, "keys_every_s": args.memory_keys_every}
    wrapper = tmp / "tracemalloc_wrapper.py"
    wrapper.write_text(TRACEMALLOC_WRAPPER)
    # (name, tree, wrapper or None, tracemalloc on): with --allocator-stats this tree's run goes through the wrapper
    # with tracing off (its thread sleeps between requests), so its RSS stays the app's own
    runs = [(name, tree, wrapper if args.allocator_stats and not name else None, False) for name, tree in trees.items()]
    if args.tracemalloc:
        runs.append(("tracemalloc_", trees[""], wrapper, True))
    if args.tracemalloc_only:
        runs = [("tracemalloc_", trees[""], wrapper, True)]
    for name, tree, script, trace in runs:
        os.environ["XDG_STATE_HOME"] = str(tmp / f"state-memory-{name or 'this'}")
        snapshots = mkdir(tmp / f"snapshots-{name or 'this'}")
        os.environ["TUI_FLEET_SNAPSHOTS"] = str(snapshots)
        os.environ["TUI_FLEET_TRACEMALLOC"] = "1" if trace else "0"
        os.environ["TUI_FLEET_NO_FREEZE"] = "1" if args.no_gc_freeze else "0"
        os.environ["TUI_FLEET_REFERRERS"] = args.referrers
        flood = spawn([str(Path(__file__).with_name("tui_flood.py")), "--writer", str(root), ",".join(flooded),
                       "--rate", str(args.flood_rate), "--seconds", str(args.memory_minutes * 60 + 120)]) \
            if flooded else None
        try:
            one = memory_run(tree, config, ids, args.memory_minutes, args.memory_keys_every, size,
                             script, snapshots if script is not None else None)
        finally:
            if flood is not None:
                flood.terminate()
                flood.wait()
        for sid in flooded:  # the next control room starts from the same logs
            (root / sid / "container.log").write_bytes(first_logs[sid])
        if one is None:
            print("the control room did not draw", file=sys.stderr)
            return 1
        if trace:
            one["tracemalloc"] = tracemalloc_growth(snapshots)
        if script is not None:
            one["allocators"] = {p.name.split(".")[0]: reserved(json.loads(p.read_text()))
                                 for p in sorted(snapshots.glob("*.stats.json"))}
        result["memory"][f"{name}rss_mb"] = one
    return finish(result, args.json)


def snapshot(folder: Path, name: str, timeout: float = 120.0) -> None:
    """Ask the tracemalloc wrapper for a snapshot `name` and wait until it is written."""
    (folder / f"{name}.want").touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (folder / f"{name}.stats.json").exists():
        time.sleep(0.2)


def memory_run(tree: Path, config: Path, ids: list[str], minutes: float, keys_every: float, size,
               script: Path | None, snapshots: Path | None) -> dict | None:
    _ms, term = control_room(tree, config, (), ids[-1].split("Z-", 1)[1], size, timeout=120 if script else 60,
                             script=script)
    try:
        if _ms is None:
            return None
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        parts: list[tuple[float, dict[str, float]]] = []
        maps: dict[str, dict[str, int]] = {}
        next_keys = start + keys_every if keys_every else float("inf")
        rounds = 0
        wanted = {"1-first-minute": 60.0, "2-half": minutes * 30} if snapshots is not None else {}
        while (now := time.monotonic()) - start < minutes * 60:
            split = term.rss_parts_mb()
            samples.append((now - start, split.get("total", 0.0)))
            parts.append((now - start, split))
            if "first_minute" not in maps and now - start >= 60:
                maps["first_minute"] = term.mappings_kb()
            for name, at in list(wanted.items()):
                if now - start >= at:
                    snapshot(snapshots, name)
                    del wanted[name]
            if now >= next_keys:
                for key in ("T", "\x1b[B", "s", "T", "\x1b[B"):
                    term.press(key)
                    time.sleep(0.4)
                rounds += 1
                next_keys += keys_every
            time.sleep(max(0.0, start + len(samples) - time.monotonic()))
        maps["end"] = term.mappings_kb()
        trimmed = {}
        if snapshots is not None:
            snapshot(snapshots, "3-end")
            trimmed["before_mb"] = round(term.rss_mb(), 1)
            snapshot(snapshots, "4-end-gc")
            snapshot(snapshots, "5-end-trim")
            time.sleep(1)
            trimmed["after_mb"] = round(term.rss_mb(), 1)
        return {"samples": len(samples), "key_rounds": rounds, "loaded": round(samples[0][1], 1),
                **minutes_summary(samples, 1), "max": round(max(m for _, m in samples), 1),
                "per_minute_means": [round(statistics.mean(m for t, m in samples if k * 60 <= t < (k + 1) * 60), 1)
                                     for k in range(int(samples[-1][0] // 60) + 1)
                                     if any(k * 60 <= t < (k + 1) * 60 for t, _ in samples)],
                "by_kind": rss_by_kind(parts, maps),
                **({"rss_around_malloc_trim_at_end": trimmed} if trimmed else {})}
    finally:
        term.close()


def minutes_summary(series: list[tuple[float, float]], digits: int) -> dict:
    """(seconds, MB) samples as the memory mode reports them: the first and the last minute's means and the slope
    of a least-squares line over the second half, in MB/min."""
    end = series[-1][0]
    first = [m for t, m in series if t < 60]
    last = [m for t, m in series if t >= end - 60]
    slope = slope_mb_per_min([x for x in series if x[0] >= end / 2])
    return {"first_minute_mean": round(statistics.mean(first), digits) if first else None,
            "last_minute_mean": round(statistics.mean(last), digits),
            "slope_second_half_mb_per_min": None if slope is None else round(slope, 3)}


def rss_by_kind(parts: list[tuple[float, dict[str, float]]], maps: dict[str, dict[str, int]], top: int = 8) -> dict:
    """Where the RSS went: for anonymous, file and shared pages the first and last minute's means and the slope of
    the second half (MB/min); and the mappings whose resident size grew most from a minute in to the end (KiB), so
    a creep can be told apart as heap (`[heap]`: the main thread's malloc; `anon@...`: other threads' malloc arenas,
    Python's object arenas, large blocks) or as file pages read in as the app first runs more of its code."""
    out: dict = {}
    for kind in ("anon", "file", "shmem"):
        series = [(t, p[kind]) for t, p in parts if kind in p]
        if series:
            out[kind] = minutes_summary(series, 2)
    if "first_minute" in maps:
        before, after = maps["first_minute"], maps["end"]
        grew = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in set(before) | set(after)), reverse=True)
        out["mappings_grown_kib"] = [f"{k} {d:+d} (now {after.get(k, 0)})" for d, k in grew[:top] if d > 0]
        out["mappings_new"] = sum(1 for k in after if k not in before)
        out["mappings_gone"] = sum(1 for k in before if k not in after)
    return out


def reserved(stats: dict) -> dict:
    """The allocators' figures with what they hold from the system in all, in MB: Python's object arenas (each
    `bytes_per_arena`), glibc's heaps and its mmapped blocks; the RSS's anonymous pages cannot grow past it (apart
    from thread stacks and what C code maps itself) unless an allocator takes more."""
    py, libc = stats.get("pymalloc", {}), stats.get("glibc_malloc", {})
    if "bytes_per_arena" in py and "arenas_allocated_current" in py and libc:
        total = py["arenas_allocated_current"] * py["bytes_per_arena"] + libc["heap_bytes"] + libc["mmapped_bytes"]
        stats["allocators_hold_mb"] = round(total / 2**20, 2)
    return stats


def short(filename: str) -> str:
    """A file's name from its package on (`textual/strip.py`, `nanogpt_tui/tui/app.py`), not this machine's path."""
    for marker in ("site-packages/", "/nanogpt_tui/"):
        if marker in filename:
            return ("nanogpt_tui/" if marker.startswith("/") else "") + filename.rsplit(marker, 1)[-1]
    return filename.rsplit("/lib/", 1)[-1]


def tracemalloc_growth(folder: Path, top: int = 12) -> dict:
    """The Python allocations that grew most from a minute in to the end, and from half-way to the end, by
    file:line; and the traced total at each snapshot."""
    import tracemalloc

    snaps = {p.stem: tracemalloc.Snapshot.load(str(p)) for p in sorted(folder.glob("*.snap"))}
    out: dict = {"traced_mb": {k: round(sum(t.size for t in s.traces) / 2**20, 2) for k, s in snaps.items()}}
    for since in ("1-first-minute", "2-half"):
        if since in snaps and "3-end" in snaps:
            out[f"top_growth_{since}_to_end"] = growth(snaps["3-end"].compare_to(snaps[since], "lineno"), top)
    return out


def growth(stats, top: int) -> list[str]:
    """The `top` lines whose allocations grew most: `file:line +KiB (+blocks, now KiB)`."""
    return [f"{short(s.traceback[0].filename)}:{s.traceback[0].lineno} "
            f"{s.size_diff / 1024:+.1f} KiB ({s.count_diff:+d} blocks, now {s.size / 1024:.1f} KiB)"
            for s in sorted(stats, key=lambda s: -s.size_diff)[:top]]


class RssSampler:
    """The app's RSS every second in a thread, while the keys are pressed."""

    def __init__(self, term: Terminal) -> None:
        import threading

        self.term, self.samples, self._stop = term, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append(self.term.rss_mb())
            except OSError:
                return

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.samples


def keys(tree: Path, config: Path, ids: list[str], presses: int, size) -> tuple[dict, dict] | None:
    """Key-to-screen in `tree`'s control room on the sessions `ids`: `T`, `s`, `down` and typing a filter."""
    _ms, term = control_room(tree, config, (), ids[-1].split("Z-", 1)[1], size)
    try:
        if _ms is None:
            return None
        time.sleep(3.0)
        rss0 = term.rss_mb()
        sampler = RssSampler(term)
        toggles, sorts, downs, filters, missed = [], [], [], [], []
        for _ in range(max(1, presses // 3)):
            toggles.append(key_ms(term, "T", "GPU-h used"))  # the table's header
            time.sleep(0.3)
            term.press("T")
            time.sleep(0.5)
        term.press("T")
        time.sleep(0.5)
        order = ["agent", "strategy", "anchor", "host", "status", "GPU-h used", "left", "best  %human",
                 "last verdict", "activity", "GPU", "cost", "session"]
        for k in range(presses):
            title = order[k % len(order)]
            sorts.append(key_ms(term, "s", f"{title}▲", timeout=3))  # a tree whose arrow is cut: missed
            time.sleep(0.3)
        while key_ms(term, "s", "session▲", timeout=2) is None:
            pass
        rows = ids[::-1]  # by session: oldest first (the fleet's first session was started last)
        for k in range(min(presses, len(rows) - 1)):
            downs.append(key_ms(term, "\x1b[B", f"{rows[k + 1]} · container.log"))
            time.sleep(0.3)
        term.press("/")
        time.sleep(0.3)
        for k in range(min(presses, 10)):
            want = f"fleet-{k:02d}"
            for ch in want[:-1]:
                term.press(ch)
            # The title counts the hidden cards, and the card left (its border title: the session id) is drawn.
            match = next(i for i in ids if i.endswith(want))
            texts = ["(" + str(len(ids) - 1) + " hidden)", match]
            mark = term.mark()
            filters.append(keys_ms(term, want[-1], texts))
            if filters[-1] is None:  # which of the two never showed, and for which word
                missed.append({"word": want, "missing": [t for t in texts if term.wait_for(t, since=mark,
                                                                                          timeout=0.1) is None]})
            for _ in want:
                term.press("\x7f")
            time.sleep(0.5)
        samples = sampler.stop()
        return ({"T_cards_to_table": toggles, "s_next_sort_column": sorts, "down_next_row": downs,
                 "filter_last_character": filters, "filter_missed": missed},
                {"loaded": round(rss0, 1), "during_keys_first_10s_mean": round(statistics.mean(samples[:10]), 1),
                 "during_keys_last_10s_mean": round(statistics.mean(samples[-10:]), 1),
                 "during_keys_max": round(max(samples), 1), "after_keys": round(term.rss_mb(), 1)})
    finally:
        term.close()


def finish(result: dict, as_json: bool) -> int:
    result["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:34} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
