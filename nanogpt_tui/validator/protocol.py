"""The submit protocol between an agent and the validator apart from it: requests, frozen submissions, sealed
verdicts, progress, responses, and the one trusted reader of a session's verdicts.

The agent's `submit` only *asks*: it writes a request into `workspace/requests/` (the one place it may write for
this) and waits. The validator (a process of the host, retiming in its own container on Docker) freezes the named
submission into `validator/frozen/<request>/` (a copy and its sha256s), validates the frozen copy, writes the
verdict into `validator/verdicts/` and seals it (an HMAC with a key kept in the sessions folder, never mounted into
a container), streams its progress into `validator/progress.jsonl` and answers in `validator/responses/`. The agent's
container sees `validator/` read-only.

Every reader of scores (the control room, `report`, `reproduce`, the validator's own "best so far") goes through
`trusted_verdicts`: a verdict counts only when its seal holds and its code hashes match the frozen submission, whose
files still hash to what was frozen. Anything under `workspace/` that looks like a verdict is ignored and flagged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator.retime import STEP_PROGRESS
from nanogpt_tui.validator.verdict import Verdict, read_verdict

SCHEMA_VERSION = 1
CODE_SUFFIXES = (".py", ".sh")  # what `submit` hashes and retimes (validator.submit.CODE_SUFFIXES)
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
SUBMISSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
# Folders of a workspace never searched for stray verdicts (the data, git's objects, the agent's home and caches).
_SKIP_DIRS = {"data", ".git", "home", "node_modules", "__pycache__", ".work", ".cache"}
_SCAN_DEPTH = 5
_SCAN_MAX_BYTES = 2_000_000

# Inside validator/.
FROZEN = "frozen"
VERDICTS = "verdicts"
RESPONSES = "responses"
PROGRESS_FILE = "progress.jsonl"
SERVICE_FILE = "service.json"  # the serving process (pid, start ticks; `serving` once it serves): is it alive?
SEAL_SUFFIX = ".seal"
KEY_FILE = ".validator.key"  # in the sessions folder: the sealing key, never inside a session or a container
READABLE = 0o644  # what the validator writes, the agent (another user) reads through its read-only mount


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validator_dir(session_dir: Path) -> Path:
    return Path(session_dir) / L.VALIDATOR


# --- requests (written by the agent's `submit`) ----------------------------------------------------------------


@dataclass(frozen=True)
class SubmitRequest:
    """What the agent asks for: validate `submission` (a folder name under submissions/), or retime the anchor."""

    request_id: str
    submission: str
    kind: str = "submission"  # or "baseline": the validator retimes its own copy of the anchor
    runs: int | None = None
    requested_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "request_id": self.request_id, "submission": self.submission,
                "kind": self.kind, "runs": self.runs, "requested_at": self.requested_at}

    @classmethod
    def from_dict(cls, data: Any) -> "SubmitRequest":
        """A request as the agent wrote it, checked: untrusted input, so every field is validated."""
        if not isinstance(data, dict):
            raise ValueError("a request is a JSON object")
        rid, sub, kind, runs = data.get("request_id"), data.get("submission"), data.get("kind"), data.get("runs")
        if not isinstance(rid, str) or not REQUEST_ID.match(rid):
            raise ValueError("request_id must be letters, digits, '.', '_' or '-'")
        if kind not in ("submission", "baseline"):
            raise ValueError("kind must be submission or baseline")
        if kind == "submission" and (not isinstance(sub, str) or not SUBMISSION_NAME.match(sub)):
            raise ValueError("submission must name a folder under submissions/ (e.g. submission_1)")
        if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or not 2 <= runs <= 100):
            raise ValueError("runs must be a whole number from 2 to 100")
        return cls(request_id=rid, submission=sub if isinstance(sub, str) else "anchor", kind=kind, runs=runs,
                   requested_at=str(data.get("requested_at") or ""))


def new_request_id(submission: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{submission}__{stamp}__{secrets.token_hex(3)}"


def write_request(requests_dir: Path, request: SubmitRequest) -> Path:
    path = Path(requests_dir) / f"{request.request_id}.json"
    atomic_write_json(path, request.to_dict())
    return path


def pending_requests(workspace: Path, answered: set[str]) -> tuple[list[SubmitRequest], list[tuple[str, str]]]:
    """Requests in the workspace not yet answered, oldest first; and (file name, why) for unreadable ones."""
    folder = Path(workspace) / L.REQUESTS
    found, bad = [], []
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        if path.stem in answered:
            continue
        try:
            if path.stat().st_size > 64_000:
                raise ValueError("the request file is too large")
            request = SubmitRequest.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if request.request_id != path.stem:
                raise ValueError("its request_id differs from its file name")
            found.append(request)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
            bad.append((path.stem, str(err)))
    return found, bad


# --- sealing (the host's key) -----------------------------------------------------------------------------------


class Sealer:
    """HMAC-SHA256 seals with a key kept in the sessions folder (mode 0600; no container mounts that folder)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def for_sessions(cls, sessions_root: Path, *, create: bool) -> "Sealer | None":
        path = Path(sessions_root) / KEY_FILE
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except FileNotFoundError:
            if not create:
                return None
        except (OSError, ValueError):
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return cls.for_sessions(sessions_root, create=False)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        return cls.for_sessions(sessions_root, create=False)

    def seal(self, data: bytes) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def holds(self, data: bytes, seal: str) -> bool:
        return hmac.compare_digest(self.seal(data), seal.strip())

    def seal_file(self, path: Path) -> None:
        atomic_write_bytes(Path(str(path) + SEAL_SUFFIX), (self.seal(Path(path).read_bytes()) + "\n").encode(),
                           mode=READABLE)

    def file_holds(self, path: Path) -> bool:
        try:
            return self.holds(Path(path).read_bytes(), Path(str(path) + SEAL_SUFFIX).read_text())
        except (OSError, UnicodeDecodeError):
            return False


# --- freezing ---------------------------------------------------------------------------------------------------


def hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of a submission's code files (top-level .py and .sh, no symlinks), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.is_symlink() and p.suffix in CODE_SUFFIXES}


@dataclass
class Frozen:
    """A submission as the validator copied it: the copy's folder and its manifest."""

    request_id: str
    submission: str
    kind: str
    folder: Path
    sha256: dict[str, str]
    source: str  # where it was copied from, relative to the session folder
    frozen_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "request_id": self.request_id, "submission": self.submission,
                "kind": self.kind, "sha256": self.sha256, "source": self.source, "frozen_at": self.frozen_at}


def freeze(source: Path, vdir: Path, request: SubmitRequest, sealer: Sealer, *, source_label: str) -> Frozen:
    """Copy the submission's code files (regular files only: a symlink could point anywhere) into
    `validator/frozen/<request>/`, read-only, and write their sha256s beside it, sealed."""
    source = Path(source)
    folder = Path(vdir) / FROZEN / request.request_id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix in CODE_SUFFIXES:
            shutil.copyfile(path, folder / path.name)
            os.chmod(folder / path.name, 0o444)
    frozen = Frozen(request_id=request.request_id, submission=request.submission, kind=request.kind, folder=folder,
                    sha256=hash_folder(folder), source=source_label, frozen_at=utc_now())
    manifest = folder.with_suffix(".json")
    atomic_write_json(manifest, frozen.to_dict(), mode=READABLE)
    sealer.seal_file(manifest)
    return frozen


# --- progress and responses (written by the validator) ----------------------------------------------------------


def append_progress(vdir: Path, request_id: str, kind: str, text: str, **fields: Any) -> None:
    """One line of the validator's progress, for the agent's `submit` to print and the control room to show.

    A run's step line (`step_progress`) also carries `run`, `runs`, `step` and `steps`, so readers need not parse
    its text."""
    step = STEP_PROGRESS.fullmatch(text) if kind == "progress" else None
    if step:
        fields = {**dict(zip(("run", "runs", "step", "steps"), map(int, step.groups()))), **fields}
    line = json.dumps({"ts": utc_now(), "request_id": request_id, "type": kind, "text": text, **fields},
                      ensure_ascii=True)
    path = Path(vdir) / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def write_response(vdir: Path, request_id: str, *, status: str, text: str, verdict_file: str | None = None,
                   exit_code: int) -> Path:
    """The validator's answer to one request: `verdict` (with the verdict's file name) or `refused` (why)."""
    path = Path(vdir) / RESPONSES / f"{request_id}.json"
    atomic_write_text(path, json.dumps({"schema_version": SCHEMA_VERSION, "request_id": request_id, "status": status,
                                        "text": text, "verdict_file": verdict_file, "exit_code": exit_code,
                                        "at": utc_now()}) + "\n", mode=READABLE)
    return path


def answered_requests(vdir: Path) -> set[str]:
    folder = Path(vdir) / RESPONSES
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


# --- the trusted reader -----------------------------------------------------------------------------------------


@dataclass
class TrustedVerdicts:
    """A session's verdicts that count for anything, and one sentence per thing that was ignored and why."""

    verdicts: list[Verdict] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # tampering or forgery: shown to people, never scored
    problems: list[str] = field(default_factory=list)  # unreadable files
    frozen: dict[str, Path] = field(default_factory=dict)  # verdict_id -> the frozen code it validated

    @property
    def all_messages(self) -> list[str]:
        return [*self.flags, *self.problems]


def _looks_like_verdict(path: Path) -> bool:
    try:
        if path.stat().st_size > _SCAN_MAX_BYTES:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "outcome" in data and ("verdict_id" in data or "submission" in data)


def stray_verdicts(workspace: Path) -> list[Path]:
    """JSON files under the workspace shaped like verdicts (the agent can write there, so they never count)."""
    workspace = Path(workspace)
    found = []
    if not workspace.is_dir():
        return found
    base_depth = len(workspace.parts)
    for root, dirs, files in os.walk(workspace):
        depth = len(Path(root).parts) - base_depth
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and depth < _SCAN_DEPTH
                   and not (Path(root) / d).is_symlink()]
        for name in files:
            if name.endswith(".json") and Path(root, name).is_file() and not Path(root, name).is_symlink():
                path = Path(root, name)
                if (Path(root) == workspace / L.REQUESTS) or not _looks_like_verdict(path):
                    continue
                found.append(path)
    return sorted(found)


def verdicts_stamp(session_dir: Path) -> tuple:
    """A cheap stamp of what `trusted_verdicts` reads (to cache on): the validator's verdicts and frozen manifests
    with their seals, and the workspace folders where stray verdicts usually land."""
    session_dir = Path(session_dir)
    vdir = validator_dir(session_dir)
    stamp = []
    for folder in (vdir / VERDICTS, vdir / FROZEN, session_dir / L.WORKSPACE / "verdicts",
                   session_dir / L.WORKSPACE / "submissions", session_dir / L.WORKSPACE):
        try:
            stamp.append((str(folder), folder.stat().st_mtime_ns,
                          tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(folder)
                                       if e.name.endswith((".json", SEAL_SUFFIX))))))
        except (FileNotFoundError, NotADirectoryError):
            stamp.append((str(folder), None))
    return tuple(stamp)


def trusted_verdicts(session_dir: Path, sealer: Sealer | None = None, *, scan_workspace: bool = True
                     ) -> TrustedVerdicts:
    """The session's verdicts written and sealed by the validator, whose code hashes match the frozen submission;
    everything else is left out with a flag saying what and why."""
    session_dir = Path(session_dir)
    if sealer is None:
        sealer = Sealer.for_sessions(session_dir.parent, create=False)
    vdir = validator_dir(session_dir)
    out = TrustedVerdicts()
    name = session_dir.name
    if scan_workspace:
        for path in stray_verdicts(session_dir / L.WORKSPACE):
            out.flags.append(f"{name}: ignored {path.relative_to(session_dir)}: a verdict-like file in the workspace, "
                             "which the agent can write; only the validator's verdicts count.")
    folder = vdir / VERDICTS
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(session_dir)
        if sealer is None:
            out.flags.append(f"{name}: ignored {rel}: the sessions folder has no validator key ({KEY_FILE}), so its "
                             "seal cannot be checked.")
            continue
        if not sealer.file_holds(path):
            out.flags.append(f"{name}: ignored {rel}: its seal does not match, so it was written or edited by "
                             "something other than the validator.")
            continue
        try:
            verdict = read_verdict(path)
        except UserError as err:
            out.problems.append(str(err))
            continue
        request_id = verdict.request_id
        manifest = vdir / FROZEN / f"{request_id}.json" if request_id else None
        if manifest is None or not manifest.is_file() or not sealer.file_holds(manifest):
            out.flags.append(f"{name}: ignored {rel}: no sealed frozen submission for request {request_id!r}.")
            continue
        try:
            frozen = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            out.flags.append(f"{name}: ignored {rel}: its frozen submission's manifest cannot be read.")
            continue
        frozen_dir = vdir / FROZEN / request_id
        now = hash_folder(frozen_dir)
        if frozen.get("sha256") != verdict.code_sha256 or now != verdict.code_sha256:
            out.flags.append(f"{name}: ignored {rel}: the frozen code of {verdict.submission} no longer hashes to "
                             "what was validated.")
            continue
        if verdict.kind == "submission":
            live = hash_folder(session_dir / L.WORKSPACE / "submissions" / verdict.submission)
            if live and live != verdict.code_sha256:
                out.flags.append(f"{name}: submissions/{verdict.submission} was changed after its verdict; the "
                                 "verdict stays with the frozen copy that was validated "
                                 f"({frozen_dir.relative_to(session_dir)}).")
        out.verdicts.append(verdict)
        out.frozen[verdict.verdict_id] = frozen_dir
    out.verdicts.sort(key=lambda v: v.started_at)
    return out
