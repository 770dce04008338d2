"""The human record timeline: the manifest in `human_baselines/records.tsv`, and fetching or importing a record's code."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from nanogpt_tui.code_edits import EditError, apply_edits
from nanogpt_tui.errors import UserError
from nanogpt_tui.record_log import MAIN_FILE, code_section, split_code_section
from nanogpt_tui.stack import ENV_COLUMNS, Stack

MANIFEST_NAME = "records.tsv"
# Records we write ourselves (the smoke track), each as edits over the record before it; their folders are written
# from it on demand, as upstream records are fetched from their logs, and are never committed.
OUR_RECORDS_NAME = "our_records.toml"
MANIFEST_COLUMNS = (
    "number", "name", "date", "record_dir", "title", "record_time_s", "retimed_seconds_faster_vs_fa3",
    "log_path", "commit", "code_sha256", "code_lines", "note", "pr", "code_files", *ENV_COLUMNS,
)
# Optional columns: a manifest without them is all track 1 (the speedrun's 8xH100 track).
OPTIONAL_COLUMNS = ("track", "hardware")
TRACK_1 = "track_1"
SMOKE_TRACK = "smoke"
FA3 = "2025-09-03_FA3"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/KellerJordan/modded-nanogpt"
RUN_SH_8XH100 = "#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\ntorchrun --standalone --nproc_per_node=8 train_gpt.py\n"
# Files a record folder may hold besides train_gpt.py; anything else (logs, READMEs) stays behind on import.
RECORD_CODE_SUFFIXES = (".py", ".sh")


@dataclass(frozen=True)
class Derivation:
    """How one of our own records is written: its parent record's folder with these edits to train_gpt.py."""

    parent: str
    kind: str  # what the change is: schedule, architecture, optimizer, systems...
    description: str  # record.toml's description
    replace: tuple[tuple[str, str], ...] = ()  # exact (old, new) substitutions, each matching once
    values: tuple[tuple[str, object], ...] = ()  # Hyperparameters field -> new default


@dataclass(frozen=True)
class Record:
    """One row of the world-record table (track 1: 8xH100, GPT-2 small to val_loss <= 3.28)."""

    number: int
    name: str
    date: dt.date
    record_dir: str
    title: str
    record_time_s: float
    retimed_seconds_faster_vs_fa3: float | None
    log_path: str
    commit: str
    code_sha256: str
    code_lines: int | None
    note: str
    pr: str
    # (file name, sha256) of each file the code section splits into, train_gpt.py first; empty without code.
    code_files: tuple[tuple[str, str], ...] = ()
    track: str = TRACK_1  # records compare (gap, lines, predecessors) only within their own track
    hardware: str = ""  # where record_time_s was measured, when the manifest says (the smoke track's own times)
    # The stack the record's log states (Python, PyTorch, CUDA, Triton, GPU, how FlashAttention is loaded).
    stack: Stack = Stack()
    derivation: Derivation | None = None  # one of our own records (OUR_RECORDS_NAME), written from its parent

    @property
    def is_retiming(self) -> bool:
        """A re-timing of an earlier record, not a new record."""
        return "retiming" in self.note

    @property
    def from_log(self) -> bool:
        """Its code can be recovered from an upstream training log."""
        return bool(self.log_path and self.commit and self.code_sha256)

    @property
    def can_fetch(self) -> bool:
        """`records fetch` can bring its code here: from its log, or written from our own record's edits."""
        return self.from_log or self.derivation is not None

    def code_dir(self, baselines_dir: Path) -> Path:
        return Path(baselines_dir) / self.name

    def code_present(self, baselines_dir: Path) -> bool:
        return (self.code_dir(baselines_dir) / "train_gpt.py").is_file()


class Timeline:
    """The records in table order, with the questions the benchmark asks of them."""

    def __init__(self, records: Iterable[Record], source: Path | None = None) -> None:
        self.records: tuple[Record, ...] = tuple(records)
        self.source = source
        self._by_name = {r.name: r for r in self.records}
        self._index = {r.name: i for i, r in enumerate(self.records)}

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Record:
        try:
            return self._by_name[name]
        except KeyError:
            containing = [n for n in self._by_name if name.lower() in n.lower()]
            import difflib

            close = containing or difflib.get_close_matches(name, list(self._by_name), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else "`nanogpt-tui records list` shows the names."
            raise UserError(f"There is no record named {name!r} in the timeline; {hint}") from None

    def between(self, anchor: str, target: str) -> list[Record]:
        """The new records after `anchor` up to and including `target`, in order (re-timings left out)."""
        a, t = self._ordered_pair(anchor, target)
        track = self.records[a].track
        return [r for r in self.records[a + 1 : t + 1] if not r.is_retiming and r.track == track]

    def track(self, name: str) -> list[Record]:
        """Every record of the track named `name`, in table order."""
        return [r for r in self.records if r.track == name]

    def last_of_track(self, anchor: str) -> Record | None:
        """The latest new record on `anchor`'s track after `anchor`, None when the anchor is the track's last."""
        a = self._index[self.get(anchor).name]
        later = [r for r in self.records[a + 1:] if r.track == self.records[a].track and not r.is_retiming]
        return later[-1] if later else None

    def seconds_faster(self, record: str, anchor: str) -> float:
        """How many seconds `record` beats `anchor`: the same-hardware re-timed figures where both are known,
        else the official record times."""
        r, a = self.get(record), self.get(anchor)
        if r.retimed_seconds_faster_vs_fa3 is not None and a.retimed_seconds_faster_vs_fa3 is not None:
            return r.retimed_seconds_faster_vs_fa3 - a.retimed_seconds_faster_vs_fa3
        return a.record_time_s - r.record_time_s

    def gap(self, anchor: str, target: str) -> float:
        """Seconds of human progress from anchor to target: 100% of the benchmark's scale."""
        self._ordered_pair(anchor, target)
        gap = self.seconds_faster(target, anchor)
        if gap <= 0:
            raise UserError(f"Record {target!r} is not faster than {anchor!r} ({gap:.2f} s), so it cannot be the "
                            "100% target; choose a faster target.")
        return gap

    def _ordered_pair(self, anchor: str, target: str) -> tuple[int, int]:
        anchor_record, target_record = self.get(anchor), self.get(target)
        if anchor_record.track != target_record.track:
            raise UserError(f"The target {target!r} is on the {target_record.track} track and the anchor {anchor!r} "
                            f"on the {anchor_record.track} track; pick a target on the anchor's track.")
        a, t = self._index[anchor], self._index[target]
        if t <= a:
            raise UserError(f"The target {target!r} does not come after the anchor {anchor!r} in the timeline; "
                            "pick a later target.")
        return a, t


def manifest_path(baselines_dir: Path) -> Path:
    return Path(baselines_dir) / MANIFEST_NAME


def load_timeline(baselines_dir: Path) -> Timeline:
    """Read `records.tsv`, checking every row; a malformed row is reported by line and column."""
    path = manifest_path(baselines_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"The record manifest {path} is missing; restore it from git "
                        "(`git checkout -- human_baselines/records.tsv`).") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"Cannot read the record manifest {path} ({err}); check the file.") from None
    timeline = parse_manifest(text, path)
    ours = Path(baselines_dir) / OUR_RECORDS_NAME
    return with_derivations(timeline, ours) if ours.is_file() else timeline


def with_derivations(timeline: Timeline, path: Path) -> Timeline:
    """The timeline with our own records' derivations (OUR_RECORDS_NAME) attached; a bad entry is named."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"Cannot read {path} ({err}); restore it from git.") from None
    entries = data.get("record", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{path} must list its records as [[record]] tables; restore it from git.")
    derivations: dict[str, Derivation] = {}
    for index, entry in enumerate(entries, start=1):
        name, parent = entry.get("name"), entry.get("parent")
        where = f"{path}, record {index} ({name!r})"
        if name not in timeline or parent not in timeline:
            raise UserError(f"{where}: both the record and its parent {parent!r} must be in the manifest; add the "
                            "record's row to records.tsv or fix the name.")
        record, source = timeline.get(name), timeline.get(parent)
        if record.track != source.track or timeline.records.index(source) >= timeline.records.index(record):
            raise UserError(f"{where}: the parent must be an earlier record of the same track.")
        if not record.code_sha256:
            raise UserError(f"{where}: the manifest gives no code_sha256 for it, so nothing pins the code its times "
                            "were measured on; add the sha256 of its train_gpt.py to records.tsv.")
        values, replaces = entry.get("set", {}), entry.get("replace", [])
        if not isinstance(values, dict) or not isinstance(replaces, list) or not all(
                isinstance(r, dict) and isinstance(r.get("old"), str) and isinstance(r.get("new"), str) and r["old"]
                for r in replaces):
            raise UserError(f"{where}: `set` must be a table and `replace` a list of {{ old, new }} tables.")
        derivations[name] = Derivation(parent=parent, kind=str(entry.get("kind", "")),
                                       description=str(entry.get("description", "")),
                                       replace=tuple((r["old"], r["new"]) for r in replaces),
                                       values=tuple(values.items()))
    return Timeline((replace(r, derivation=derivations[r.name]) if r.name in derivations else r
                     for r in timeline), source=timeline.source)


def parse_manifest(text: str, path: Path) -> Timeline:
    reader = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = tuple(reader.fieldnames or ())
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; restore the file from git.")
    records: list[Record] = []
    seen: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        if None in row or any(v is None for k, v in row.items() if k not in OPTIONAL_COLUMNS):
            raise UserError(f"{path} line {line_no} has the wrong number of tab-separated fields; fix that line.")
        try:
            record = _record_from_row(row)
        except ValueError as err:
            raise UserError(f"{path} line {line_no}: {err}; fix that line.") from None
        if record.name in seen:
            raise UserError(f"{path} line {line_no} repeats the record name {record.name!r}; names must be unique.")
        seen.add(record.name)
        records.append(record)
    if not records:
        raise UserError(f"{path} holds no records; restore it from git.")
    return Timeline(records, source=path)


def _record_from_row(row: dict[str, str]) -> Record:
    def number(key: str, kind: type, optional: bool = False):
        raw = row[key].strip()
        if not raw and optional:
            return None
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"`{key}` is {raw!r}, not a number") from None

    name = row["name"].strip()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"`name` {name!r} is not a usable folder name")
    try:
        date = dt.date.fromisoformat(row["date"].strip())
    except ValueError:
        raise ValueError(f"`date` is {row['date']!r}, not an ISO date (YYYY-MM-DD)") from None
    sha = row["code_sha256"].strip().lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ValueError(f"`code_sha256` {sha!r} is not a sha256 hex digest")
    time_s = number("record_time_s", float)
    if time_s <= 0:
        raise ValueError("`record_time_s` must be positive")
    code_files = parse_code_files(row["code_files"])
    if code_files and not sha:
        raise ValueError("`code_files` is set but `code_sha256` is empty")
    return Record(
        code_files=code_files, stack=Stack.from_manifest(row),
        number=number("number", int), name=name, date=date, record_dir=row["record_dir"].strip(),
        title=row["title"].strip(), record_time_s=time_s,
        retimed_seconds_faster_vs_fa3=number("retimed_seconds_faster_vs_fa3", float, optional=True),
        log_path=row["log_path"].strip(), commit=row["commit"].strip(), code_sha256=sha,
        code_lines=number("code_lines", int, optional=True), note=row["note"].strip(), pr=row["pr"].strip(),
        track=(row.get("track") or "").strip() or TRACK_1, hardware=(row.get("hardware") or "").strip(),
    )


def parse_code_files(raw: str) -> tuple[tuple[str, str], ...]:
    """`train_gpt.py:<sha256>;triton_kernels.py:<sha256>` as (name, sha256) pairs, train_gpt.py first."""
    raw = raw.strip()
    if not raw:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in raw.split(";"):
        name, _, sha = item.partition(":")
        name, sha = name.strip(), sha.strip().lower()
        if not name or "/" in name or name.startswith(".") or len(sha) != 64 \
                or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"`code_files` entry {item!r} is not NAME:SHA256")
        pairs.append((name, sha))
    if pairs[0][0] != MAIN_FILE:
        raise ValueError(f"`code_files` must list {MAIN_FILE} first")
    if len({n for n, _ in pairs}) != len(pairs):
        raise ValueError("`code_files` names a file twice")
    return tuple(pairs)


def format_code_files(files: dict[str, str]) -> str:
    """The `code_files` manifest value for a record's files (name -> text)."""
    return ";".join(f"{name}:{sha256_text(text)}" for name, text in files.items())


# --- code recovery -------------------------------------------------------------------------------------------


def record_files_from_log(record: Record, log_text: str, where: str) -> dict[str, str]:
    """The record's files recovered from its log, each checked against the manifest; `where` names the log in
    errors. Raises UserError unless the section and every file match."""
    try:
        section = code_section(log_text)
    except ValueError as err:
        raise UserError(f"The log at {where} cannot give {record.name}'s code: {err}; check the manifest's "
                        "log_path.") from None
    digest = sha256_text(section)
    if digest != record.code_sha256:
        raise UserError(f"The code recovered from {where} has sha256 {digest[:12]}..., not the manifest's "
                        f"{record.code_sha256[:12]}...; refusing it (the mirror may serve a different file).")
    try:
        files = split_code_section(section)
    except ValueError as err:
        raise UserError(f"The code section of {where} cannot be split into files: {err}; check the log.") from None
    if record.code_files:
        found = [(name, sha256_text(text)) for name, text in files.items()]
        if found != list(record.code_files):
            raise UserError(f"The files split from {where} ({', '.join(files)}) differ from the manifest's "
                            f"({', '.join(n for n, _ in record.code_files)}) for {record.name}; refusing them.")
    return files


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def fetch_record(timeline: Timeline, name: str, baselines_dir: Path, *, base_url: str = DEFAULT_BASE_URL,
                 timeout_s: float = 60.0, force: bool = False) -> Path:
    """Download a record's training log, recover its code, check it against the manifest, and install it.

    Writes every file of the log's code section (`train_gpt.py`, `triton_kernels.py`, ...) and `run.sh` into
    `<baselines_dir>/<name>/`; nothing is written unless every check passes.
    """
    record = timeline.get(name)
    if not record.can_fetch:
        raise UserError(f"Record {name!r} has no training log with code in the manifest, so it cannot be fetched; "
                        "use `nanogpt-tui records import DIR --name NAME` with a local copy.")
    import urllib.error
    import urllib.parse
    import urllib.request  # here, not at the top: the control room reads the timeline, never fetches at start

    dest = record.code_dir(baselines_dir)
    _refuse_existing(dest, force)
    if record.derivation is not None:
        return _write_our_record(timeline, record, baselines_dir)
    url = f"{base_url.rstrip('/')}/{record.commit}/{urllib.parse.quote(record.log_path)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the URL is http(s) by construction
            payload = response.read()
    except urllib.error.HTTPError as err:
        raise UserError(f"Downloading {url} failed with HTTP {err.code}; check --base-url and your network.") from None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"Could not download {url} ({reason}); check your network or pass --base-url to a mirror.") \
            from None
    try:
        log_text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"The log at {url} is not UTF-8 text; check that --base-url points at raw files.") from None
    files = record_files_from_log(record, log_text, url)
    payloads = {filename: text.encode("utf-8") for filename, text in files.items()}
    payloads.setdefault("run.sh", RUN_SH_8XH100.encode("utf-8"))
    _install(dest, payloads)
    return dest


def ensure_record_code(timeline: Timeline, name: str, baselines_dir: Path, *, base_url: str = DEFAULT_BASE_URL,
                       timeout_s: float = 60.0) -> tuple[Path, bool]:
    """A record's folder, fetched first when its code is not there yet: (folder, whether it was fetched now).
    Raises UserError saying which import is needed for a record no log holds the code of."""
    record = timeline.get(name)
    if record.code_present(baselines_dir) and (record.derivation is None or sha256_text(
            (record.code_dir(baselines_dir) / MAIN_FILE).read_text(encoding="utf-8")) == record.code_sha256):
        return record.code_dir(baselines_dir), False
    if not record.can_fetch:
        raise UserError(f"Record {name!r} has no training log with code in the manifest, so it cannot be fetched; "
                        f"import a local copy: `nanogpt-tui records import DIR --name {name}`.")
    return fetch_record(timeline, name, baselines_dir, base_url=base_url, timeout_s=timeout_s, force=True), True


def _write_our_record(timeline: Timeline, record: Record, baselines_dir: Path) -> Path:
    """Write one of our own records: its parent's folder (itself written first when it is one of ours too) with the
    derivation's edits, checked against the manifest's sha256, so the code is the code its times were measured on."""
    derivation = record.derivation
    assert derivation is not None
    parent_dir, _ = ensure_record_code(timeline, derivation.parent, baselines_dir)
    files = {p.name: p.read_bytes() for p in sorted(parent_dir.iterdir())
             if p.is_file() and p.suffix in (*RECORD_CODE_SUFFIXES, ".toml")}
    try:
        code, _ = apply_edits(files[MAIN_FILE].decode("utf-8"), derivation.replace, dict(derivation.values))
    except (EditError, KeyError, UnicodeDecodeError) as err:
        raise UserError(f"Our record {record.name!r} cannot be written from {parent_dir}: {err}; fix its entry in "
                        f"{OUR_RECORDS_NAME} or restore {derivation.parent}'s code.") from None
    if sha256_text(code) != record.code_sha256:
        raise UserError(f"Our record {record.name!r} as written from {derivation.parent} and {OUR_RECORDS_NAME} has "
                        f"sha256 {sha256_text(code)[:12]}..., not the manifest's {record.code_sha256[:12]}..., so its "
                        "times belong to other code; restore both files from git, or re-time the track "
                        "(benchmarks/smoke_track.py) and update records.tsv.")
    files[MAIN_FILE] = code.encode("utf-8")
    if "record.toml" in files:
        files["record.toml"] = _renamed_record_toml(files["record.toml"], record.name, derivation.description)
    dest = record.code_dir(baselines_dir)
    _install(dest, files)
    return dest


def _renamed_record_toml(data: bytes, name: str, description: str) -> bytes:
    """The parent's record.toml (val_loss_target, the data's numbers) under the new record's name."""
    import tomlkit

    document = tomlkit.parse(data.decode("utf-8"))
    document["name"] = name
    if description:
        document["description"] = description
    return tomlkit.dumps(document).encode("utf-8")


def trains_on_synthetic_shards(record_dir: Path) -> bool:
    """Whether a record folder's code trains on the shards `nanogpt-tui data synth` writes (its record.toml names
    their `synth_seed`, as every smoke track record's does), which can then be made on demand."""
    try:
        return "synth_seed" in tomllib.loads((Path(record_dir) / "record.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def anchor_choices(timeline: Timeline, baselines_dir: Path) -> list[str]:
    """Every record a session can start from: first those whose code is here (folders off the timeline, then
    the timeline's in its order: the smoke track, imports), then every other timeline record that can be
    fetched, in timeline order."""
    baselines_dir = Path(baselines_dir)
    present = sorted(p.name for p in baselines_dir.iterdir() if (p / MAIN_FILE).is_file()) \
        if baselines_dir.is_dir() else []
    here = [r.name for r in timeline if r.name in present]
    fetchable = [r.name for r in timeline if r.can_fetch and r.name not in present]
    return [n for n in present if n not in timeline] + here + fetchable


def import_record(source_dir: Path, name: str, baselines_dir: Path, timeline: Timeline | None = None, *,
                  force: bool = False) -> Path:
    """Adopt a local record folder (e.g. from a modded-nanogpt checkout) under `<baselines_dir>/<name>/`."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise UserError(f"{source_dir} is not a folder; pass the record folder that holds train_gpt.py.")
    if not (source_dir / "train_gpt.py").is_file():
        raise UserError(f"{source_dir} holds no train_gpt.py; pass a record folder (e.g. records/track_1_short/NAME).")
    if not name or "/" in name or name.startswith(".") or name in {"records.tsv"}:
        raise UserError(f"{name!r} is not a usable record name; use letters, digits, '-', '_' and no '/'.")
    files: dict[str, bytes] = {}
    for path in sorted(source_dir.iterdir()):
        if path.is_file() and path.suffix in RECORD_CODE_SUFFIXES:
            files[path.name] = path.read_bytes()
    try:
        code = files["train_gpt.py"].decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source_dir / 'train_gpt.py'} is not UTF-8 text; check the file.") from None
    if timeline is not None and name in timeline:
        _check_import_matches(timeline.get(name), source_dir, files, code)
    files.setdefault("run.sh", RUN_SH_8XH100.encode("utf-8"))
    dest = Path(baselines_dir) / name
    _refuse_existing(dest, force)
    _install(dest, files)
    return dest


def _check_import_matches(record: Record, source_dir: Path, files: dict[str, bytes], code: str) -> None:
    """A folder imported under a manifest name must hold that record's files, each with the manifest's sha256."""
    rename = f"import it under another name, e.g. --name {record.name}-local."
    if not record.code_files:
        if record.code_sha256 and sha256_text(code) != record.code_sha256:
            raise UserError(f"{source_dir / MAIN_FILE} differs from record {record.name!r} in the manifest (sha256 "
                            f"mismatch); {rename}")
        return
    for filename, expected in record.code_files:
        if filename not in files:
            raise UserError(f"{source_dir} lacks {filename}, which record {record.name!r} has; copy it there or "
                            f"{rename}")
        if sha256_bytes(files[filename]) != expected:
            raise UserError(f"{source_dir / filename} differs from record {record.name!r} in the manifest (sha256 "
                            f"mismatch); {rename}")


def _refuse_existing(dest: Path, force: bool) -> None:
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists; pass --force to replace it.")


def _install(dest: Path, files: dict[str, bytes]) -> None:
    """Write a record folder in a staging folder beside it, then swap it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for filename, data in files.items():
            (staging / filename).write_bytes(data)
            if filename.endswith(".sh"):
                os.chmod(staging / filename, 0o755)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(staging, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
