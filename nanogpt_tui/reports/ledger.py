"""The change ledger of a session: every experiment and submission an agent made, its parent, its kind of change
(`nanogpt_tui.classify`) and the GPU-hours it cost; headless.

Where experiments come from, in order:

1. folders under `workspace/experiments/` that hold code (`*.py`, `*.sh`): the scripted agent's
   `NN_<name>/`, and the copies other agents keep there;
2. rows of a `results.tsv` (`workspace/experiments/results.tsv` or `workspace/results.tsv`) with a `commit`
   column (the Autoresearch-style notebook): each commit is an experiment, its code read from git;
3. when neither exists, the commits on the workspace's current branch after its first (anchor) commit.

Submissions are the folders `workspace/submissions/submission_N/`.

Parents: an explicit `parent` column of results.tsv; else, when results.tsv gives each experiment a status
(keep / discard / crash), the latest earlier `keep` (the loop the agents are asked to run: each experiment
starts from the best kept code), or the anchor; a commit's parent is its git parent; anything else (and
every submission) is compared with the nearest earlier code by line distance among the anchor and the
earlier experiments (submissions: the earlier submissions).

GPU-hours (COST RULE):

- an experiment whose results.tsv row records its wall time (`wall_s`, `wall_time_s`, `wall_seconds`,
  `duration_s`, `elapsed_s`, `seconds`) or GPU time (`gpu_hours`, `gpu_seconds`) costs that wall time times
  its GPUs (a `gpus` column, else the session's);
- otherwise the session's GPU-hours are divided by time: an experiment folder is stamped at the last
  modification of its files (the end of its run; a `finished_at`/`ended_at`/`timestamp` column wins) and
  costs the GPU-hours since the previous stamp (the previous experiment, the end of a submission's
  retiming, or the session's start); a commit is stamped at its commit time (the start of its run) and
  costs the GPU-hours until the next stamp (or the session's end);
- a submission costs the session's GPU-hours while its verdicts were made (`started_at` to `finished_at`:
  the rule checks, the judge and the retimings), which the time division leaves out so nothing is counted
  twice (a verdict without times: its measured `gpu_seconds`);
- what no experiment or submission covers (the agent reading and thinking, waiting for the deadline) is
  `unattributed`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.classify import ALGORITHMIC, HYPERPARAMETER, KINDS, NONE, SYSTEMS, Classification, \
    classify_sources, code_distance
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions.model import Session, parse_iso
from nanogpt_tui.validator.verdict import Verdict

CODE_SUFFIXES = (".py", ".sh")
LEDGER_KINDS = (HYPERPARAMETER, ALGORITHMIC, SYSTEMS, NONE)
ANCHOR = "anchor"
WALL_COLUMNS = ("wall_s", "wall_time_s", "wall_seconds", "duration_s", "elapsed_s", "seconds")
TIME_COLUMNS = ("finished_at", "ended_at", "end", "timestamp", "ts", "time")
NAME_COLUMNS = ("experiment", "name", "folder", "dir", "directory", "path")
MAX_GIT_COMMITS = 2000

COST_RULE = (
    "An experiment costs its recorded wall time x GPUs where results.tsv records it; otherwise the session's "
    "GPU-hours are divided by time: an experiment folder costs the GPU-hours since the previous stamp (the "
    "previous experiment, the end of a submission's retiming, or the session start) up to the last "
    "modification of its files; a commit costs the GPU-hours from its commit time to the next stamp. A "
    "submission costs the session's GPU-hours while its verdicts were made (rules, judge, retimings). The rest is "
    "unattributed.")
PARENT_RULE = (
    "An explicit parent column of results.tsv; else the latest earlier experiment with status keep (or the "
    "anchor) where results.tsv records statuses; a commit's git parent; otherwise the nearest earlier code "
    "by line distance (submissions: the anchor or an earlier submission).")


@dataclass
class LedgerItem:
    """One experiment or submission: its code, when it happened, what it changed and what it cost."""

    name: str
    source: str  # experiment | commit | submission
    path: str | None  # relative to the workspace (or `git:<hash>`)
    code: dict[str, str]
    moment: dt.datetime | None
    moment_is_end: bool  # a folder's stamp is the end of its run; a commit's is the start
    status: str | None = None  # keep / discard / crash (results.tsv), or a submission's best outcome
    declared_kind: str | None = None  # what the agent said it tried (the scripted agent's `kind` column)
    description: str | None = None
    measured_gpu_hours: float | None = None
    parent: str | None = None
    parent_basis: str = ""
    classification: Classification | None = None
    gpu_hours: float = 0.0
    cost_basis: str = ""
    explicit_parent: str | None = None
    git_parent: str | None = None

    @property
    def kind(self) -> str:
        return self.classification.kind if self.classification else NONE

    def to_dict(self, evidence_limit: int = 20) -> dict[str, Any]:
        c = self.classification
        return {
            "name": self.name, "source": self.source, "path": self.path,
            "at": _iso(self.moment), "status": self.status, "declared_kind": self.declared_kind,
            "description": self.description, "parent": self.parent, "parent_basis": self.parent_basis,
            "kind": self.kind, "mixed": bool(c and c.mixed),
            "parts": {k: (c.parts.get(k, 0) if c else 0) for k in KINDS},
            "summary": c.summary() if c else NONE,
            "evidence": [e.text() for e in (c.evidence[:evidence_limit] if c else [])],
            "evidence_count": c.evidence_count if c else 0,
            "gpu_hours": round(self.gpu_hours, 6), "cost_basis": self.cost_basis,
        }


@dataclass
class Ledger:
    items: list[LedgerItem] = field(default_factory=list)
    used_gpu_hours: float = 0.0
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # where the experiments were found

    def gpu_hours_by_kind(self) -> dict[str, float]:
        out = {k: 0.0 for k in LEDGER_KINDS}
        for item in self.items:
            out[item.kind] = out.get(item.kind, 0.0) + item.gpu_hours
        return out

    @property
    def attributed_gpu_hours(self) -> float:
        return sum(item.gpu_hours for item in self.items)

    @property
    def unattributed_gpu_hours(self) -> float:
        return max(0.0, self.used_gpu_hours - self.attributed_gpu_hours)

    def shares(self) -> dict[str, Any]:
        """Share of the session's used GPU-hours per kind (with `unattributed`), and the share of the GPU-hours
        spent on changes (hyperparameter + algorithmic + systems) per kind."""
        hours = self.gpu_hours_by_kind()
        used = max(self.used_gpu_hours, self.attributed_gpu_hours)
        of_used = {k: (v / used if used > 0 else None) for k, v in hours.items()}
        of_used["unattributed"] = (self.unattributed_gpu_hours / used) if used > 0 else None
        changes = sum(hours[k] for k in KINDS)
        of_changes = {k: (hours[k] / changes if changes > 0 else None) for k in KINDS}
        return {"of_used": of_used, "of_changes": of_changes, "changes_gpu_hours": changes}

    def counts_by_kind(self, source: str | None = None) -> dict[str, int]:
        out = {k: 0 for k in LEDGER_KINDS}
        for item in self.items:
            if source is None or item.source == source or (source == "experiment" and item.source == "commit"):
                out[item.kind] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        hours = self.gpu_hours_by_kind()
        shares = self.shares()
        return {
            "sources": list(self.sources),
            "items": [item.to_dict() for item in self.items],
            "counts_by_kind": {"experiments": self.counts_by_kind("experiment"),
                               "submissions": self.counts_by_kind("submission")},
            "gpu_hours_by_kind": {k: round(v, 6) for k, v in hours.items()},
            "attributed_gpu_hours": round(self.attributed_gpu_hours, 6),
            "unattributed_gpu_hours": round(self.unattributed_gpu_hours, 6),
            "used_gpu_hours": round(self.used_gpu_hours, 6),
            "share_of_used": {k: _round(v) for k, v in shares["of_used"].items()},
            "share_of_changes": {k: _round(v) for k, v in shares["of_changes"].items()},
            "cost_rule": COST_RULE, "parent_rule": PARENT_RULE,
            "problems": list(self.problems),
        }


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(v, digits)


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------ reading

def read_code(folder: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return files
    for path in entries:
        if path.suffix in CODE_SUFFIXES and path.is_file() and not path.is_symlink():
            try:
                files[path.name] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    return files


def _last_modified(folder: Path) -> dt.datetime | None:
    latest = None
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return None
    for path in entries:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if latest is None or st.st_mtime > latest:
            latest = st.st_mtime
    return None if latest is None else dt.datetime.fromtimestamp(latest, dt.timezone.utc)


def read_results_tsv(path: Path) -> list[dict[str, str]]:
    """The rows of a results.tsv as {lower-cased column: value}; a file that is not a TSV with a header is empty."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or "\t" not in lines[0]:
        return []
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = [h.strip().lower() for h in next(reader)]
    rows = []
    for cells in reader:
        cells = cells + [""] * (len(header) - len(cells))
        rows.append({h: c.strip() for h, c in zip(header, cells)})
    return rows


def _first(row: Mapping[str, str], names: Sequence[str]) -> str | None:
    for n in names:
        value = row.get(n)
        if value:
            return value
    return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    number = _float(text)
    if number is not None and number > 1e9:
        return dt.datetime.fromtimestamp(number, dt.timezone.utc)
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _measured_gpu_hours(row: Mapping[str, str], gpus: int) -> float | None:
    direct = _float(row.get("gpu_hours"))
    if direct is not None:
        return direct
    gpu_seconds = _float(row.get("gpu_seconds"))
    if gpu_seconds is not None:
        return gpu_seconds / 3600
    wall = _float(_first(row, WALL_COLUMNS))
    if wall is None:
        return None
    n = _float(row.get("gpus"))
    return wall * (int(n) if n and n > 0 else gpus) / 3600


# ------------------------------------------------------------------------------------------------ git

def _git(workspace: Path, *args: str) -> str | None:
    try:
        # The workspace belongs to the agent's user (a container's fixed `agent` user when the host user is root),
        # and the agent writes its .git/config: trust the folder for reading, but run nothing it configures.
        done = subprocess.run(["git", "-c", f"safe.directory={Path(workspace).resolve()}", "-c", "core.fsmonitor=",
                               "-c", "core.hooksPath=/dev/null", *args], cwd=workspace, capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_code(workspace: Path, commit: str) -> dict[str, str] | None:
    listing = _git(workspace, "ls-tree", "--name-only", commit)
    if listing is None:
        return None
    files = {}
    for name in listing.splitlines():
        if name.endswith(CODE_SUFFIXES) and "/" not in name:
            text = _git(workspace, "show", f"{commit}:{name}")
            if text is not None:
                files[name] = text
    return files


def _git_commit_info(workspace: Path, commit: str) -> tuple[str, dt.datetime, str | None, str] | None:
    out = _git(workspace, "show", "-s", "--format=%H%x00%ct%x00%P%x00%s", commit)
    if not out:
        return None
    parts = out.strip().split("\x00")
    if len(parts) < 4:
        return None
    parent = parts[2].split()[0] if parts[2].split() else None
    return parts[0], dt.datetime.fromtimestamp(int(parts[1]), dt.timezone.utc), parent, parts[3]


# ------------------------------------------------------------------------------------------------ building

class ClassifierCache:
    """Classifications memoised by the code of both sides (experiments often repeat a parent's code)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Classification] = {}

    @staticmethod
    def _key(code: Mapping[str, str]) -> str:
        h = hashlib.sha256()
        for name in sorted(code):
            h.update(name.encode() + b"\0" + code[name].encode("utf-8", "replace") + b"\0")
        return h.hexdigest()

    def __call__(self, parent: Mapping[str, str], child: Mapping[str, str]) -> Classification:
        key = (self._key(parent), self._key(child))
        if key not in self._cache:
            self._cache[key] = classify_sources(parent, child)
        return self._cache[key]


def anchor_code(session_dir: Path, baselines_dir: Path | None, anchor: str) -> tuple[dict[str, str], str]:
    """The code the session started from, and where it was read: runner/anchor, else the record folder."""
    for folder, label in ((Path(session_dir) / L.RUNNER / "anchor", "runner/anchor"),
                          ((Path(baselines_dir) / anchor) if baselines_dir else None, f"human_baselines/{anchor}")):
        if folder is not None and folder.is_dir():
            code = read_code(folder)
            if code:
                return code, label
    return {}, ""


def build_ledger(session_dir: Path, session: Session, verdicts: Sequence[Verdict], *,
                 baselines_dir: Path | None = None, now: dt.datetime | None = None,
                 classifier: ClassifierCache | None = None) -> Ledger:
    session_dir = Path(session_dir)
    workspace = session_dir / L.WORKSPACE
    classify = classifier or ClassifierCache()
    budget = session.budget()
    gpus = max(1, session.gpus)
    ledger = Ledger(used_gpu_hours=budget.used_gpu_hours(now))
    anchor, anchor_where = anchor_code(session_dir, baselines_dir, session.anchor)
    if not anchor:
        ledger.problems.append(f"The anchor's code is neither in {session_dir / L.RUNNER / 'anchor'} nor in "
                               "human_baselines/, so changes cannot be classified against it.")

    # --- experiments
    rows: list[dict[str, str]] = []
    results_paths = [p for p in (workspace / "experiments" / "results.tsv", workspace / "results.tsv") if p.is_file()]
    for p in results_paths:
        rows.extend(read_results_tsv(p))
    by_name: dict[str, dict[str, str]] = {}
    for row in rows:
        name = _first(row, NAME_COLUMNS)
        if name:
            by_name[Path(name).name] = row
    experiments: list[LedgerItem] = []
    exp_root = workspace / "experiments"
    if exp_root.is_dir():
        for folder in sorted(p for p in exp_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            code = read_code(folder)
            if not code:
                continue
            row = by_name.get(folder.name, {})
            moment = _parse_time(_first(row, TIME_COLUMNS)) or _last_modified(folder)
            experiments.append(LedgerItem(
                name=folder.name, source="experiment", path=f"experiments/{folder.name}", code=code,
                moment=moment, moment_is_end=True, status=row.get("status") or None,
                declared_kind=row.get("kind") or row.get("type") or None, description=row.get("description"),
                measured_gpu_hours=_measured_gpu_hours(row, gpus) if row else None,
                explicit_parent=row.get("parent") or None))
        if experiments:
            ledger.sources.append("experiments/ folders")
    if not experiments:
        experiments = _commit_experiments(workspace, rows, gpus, ledger)

    order = {id(item): i for i, item in enumerate(experiments)}
    experiments.sort(key=lambda it: (it.moment or dt.datetime.max.replace(tzinfo=dt.timezone.utc), order[id(it)]))

    # --- submissions
    submissions: list[LedgerItem] = []
    sub_root = workspace / "submissions"
    by_submission: dict[str, list[Verdict]] = {}
    for v in verdicts:
        if v.kind == "submission":
            by_submission.setdefault(v.submission, []).append(v)
    if sub_root.is_dir():
        for folder in sorted((p for p in sub_root.iterdir() if p.is_dir()), key=_submission_order):
            code = read_code(folder)
            if not code:
                continue
            mine = sorted(by_submission.get(folder.name, []), key=lambda v: v.started_at)
            moment = parse_iso(mine[0].started_at) if mine else _last_modified(folder)
            gpu_seconds = sum(_verdict_gpu_seconds(v, gpus) for v in mine)
            outcome = next((v.outcome for v in mine if v.counts), mine[-1].outcome if mine else "not submitted")
            submissions.append(LedgerItem(
                name=folder.name, source="submission", path=f"submissions/{folder.name}", code=code, moment=moment,
                moment_is_end=False, status=outcome, measured_gpu_hours=gpu_seconds / 3600,
                description=f"{len(mine)} verdict(s)" if mine else "no verdict"))

    # --- parents and classification
    statuses = any(it.status for it in experiments if it.source == "experiment")
    earlier: list[tuple[str, dict[str, str]]] = [(ANCHOR, anchor)] if anchor else []
    known = {it.name: it for it in experiments}
    last_keep: LedgerItem | None = None
    for item in experiments:
        parent_code: dict[str, str] | None = None
        if item.explicit_parent and item.explicit_parent in known and known[item.explicit_parent] is not item:
            item.parent, item.parent_basis = item.explicit_parent, "results.tsv parent column"
            parent_code = known[item.explicit_parent].code
        elif item.source == "commit" and item.git_parent is not None:
            parent_item = known.get(item.git_parent)
            if parent_item is not None:
                item.parent, parent_code = parent_item.name, parent_item.code
            else:
                item.parent, parent_code = ANCHOR, _git_code(workspace, item.git_parent) or anchor
            item.parent_basis = "git parent"
        elif statuses and item.source == "experiment":
            if last_keep is not None:
                item.parent, parent_code = last_keep.name, last_keep.code
            elif anchor:
                item.parent, parent_code = ANCHOR, anchor
            item.parent_basis = "latest earlier keep in results.tsv"
        elif earlier:
            item.parent = _nearest(item.code, earlier)
            parent_code = dict(earlier)[item.parent] if item.parent != ANCHOR else anchor
            item.parent_basis = "nearest earlier code"
        if parent_code is not None:
            item.classification = classify(parent_code, item.code)
        earlier.append((item.name, item.code))
        if (item.status or "").lower() == "keep":
            last_keep = item
    earlier_subs: list[tuple[str, dict[str, str]]] = [(ANCHOR, anchor)] if anchor else []
    for item in submissions:
        if earlier_subs:
            item.parent = _nearest(item.code, earlier_subs)
            item.parent_basis = "nearest earlier code"
            parent_code = anchor if item.parent == ANCHOR else dict(earlier_subs)[item.parent]
            item.classification = classify(parent_code, item.code)
        earlier_subs.append((item.name, item.code))
    if anchor_where and anchor_where != "runner/anchor":
        ledger.problems.append(f"The session has no runner/anchor; its anchor's code was read from {anchor_where}.")

    _assign_costs(experiments, submissions, verdicts, session, now)
    ledger.items = sorted([*experiments, *submissions],
                          key=lambda it: (it.moment or dt.datetime.max.replace(tzinfo=dt.timezone.utc)))
    return ledger


def _verdict_gpu_seconds(verdict: Verdict, gpus: int) -> float:
    """The session's GPU-seconds while a verdict was made (started -> finished, times the session's GPUs), the
    way the budget counts them; the verdict's own `gpu_seconds` where its times are missing."""
    a, b = parse_iso(verdict.started_at), parse_iso(verdict.finished_at)
    if a is not None and b is not None and b >= a:
        return (b - a).total_seconds() * gpus
    return float(verdict.gpu_seconds or 0.0)


def _nearest(code: Mapping[str, str], candidates: Sequence[tuple[str, Mapping[str, str]]]) -> str:
    best, best_d = candidates[0][0], None
    for label, other in candidates:
        d = code_distance(code, other)
        if best_d is None or d <= best_d:
            best, best_d = label, d
    return best


def _submission_order(path: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)$", path.name)
    return (int(m.group(1)) if m else 1 << 30, path.name)


def _commit_experiments(workspace: Path, rows: list[dict[str, str]], gpus: int, ledger: Ledger) -> list[LedgerItem]:
    if not (workspace / ".git").exists():
        return []
    items: list[LedgerItem] = []
    seen: set[str] = set()
    commit_rows = [r for r in rows if r.get("commit")]
    if commit_rows:
        for row in commit_rows:
            info = _git_commit_info(workspace, row["commit"])
            if info is None:
                ledger.problems.append(f"results.tsv names commit {row['commit']}, which the workspace's git "
                                       "repository no longer holds; that experiment is left out.")
                continue
            full, when, parent, subject = info
            if full in seen:
                continue
            code = _git_code(workspace, full)
            if not code:
                continue
            seen.add(full)
            items.append(LedgerItem(
                name=full[:7], source="commit", path=f"git:{full[:12]}", code=code, moment=when, moment_is_end=False,
                status=row.get("status") or None, description=row.get("description") or subject,
                measured_gpu_hours=_measured_gpu_hours(row, gpus), git_parent=parent[:7] if parent else None))
        if items:
            ledger.sources.append("results.tsv commits")
        return items
    log = _git(workspace, "log", "--reverse", f"--max-count={MAX_GIT_COMMITS}", "--format=%H")
    if not log:
        return []
    hashes = log.split()
    for full in hashes[1:]:  # the first commit is the anchor
        info = _git_commit_info(workspace, full)
        code = _git_code(workspace, full)
        if info is None or not code:
            continue
        _, when, parent, subject = info
        items.append(LedgerItem(name=full[:7], source="commit", path=f"git:{full[:12]}", code=code, moment=when,
                                moment_is_end=False, description=subject,
                                git_parent=parent[:7] if parent and parent != hashes[0] else None))
    if items:
        ledger.sources.append("git commits")
    return items


def _assign_costs(experiments: list[LedgerItem], submissions: list[LedgerItem], verdicts: Sequence[Verdict],
                  session: Session, now: dt.datetime | None) -> None:
    gpus = max(1, session.gpus)
    start = parse_iso(session.started_at)
    end = parse_iso(session.finished_at) or now or dt.datetime.now(dt.timezone.utc)
    retimings = []
    for v in verdicts:
        a, b = parse_iso(v.started_at), parse_iso(v.finished_at)
        if a is not None and b is not None and b >= a:
            retimings.append((a, b))
    stamps = sorted(it.moment for it in experiments if it.moment is not None)

    def hours(a: dt.datetime, b: dt.datetime) -> float:
        return max(0.0, (b - a).total_seconds()) / 3600 * gpus

    for item in submissions:
        item.gpu_hours = item.measured_gpu_hours or 0.0
        item.cost_basis = "its verdicts' time x the session's GPUs"
    for item in experiments:
        if item.measured_gpu_hours is not None:
            item.gpu_hours, item.cost_basis = item.measured_gpu_hours, "wall time recorded in results.tsv"
            continue
        if item.moment is None or start is None:
            item.gpu_hours, item.cost_basis = 0.0, "no time known"
            continue
        t = min(max(item.moment, start), end)
        if item.moment_is_end:
            before = [s for s in stamps if s < item.moment] + [b for a, b in retimings if b <= item.moment]
            since = max([start, *before])
            item.gpu_hours = hours(min(since, t), t)
            item.cost_basis = "session time since the previous stamp"
        else:
            after = [s for s in stamps if s > item.moment] + [a for a, b in retimings if a >= item.moment]
            until = min([end, *after])
            item.gpu_hours = hours(t, max(t, until))
            item.cost_basis = "session time until the next stamp"
