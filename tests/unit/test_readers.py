"""Property-based tests of the validated readers: a valid file round-trips, one bad field is named, bytes never crash."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogpt_tui.contract.deadline import DeadlineError, read_deadline, read_deadline_or_none, write_deadline
from nanogpt_tui.contract.runner_exit import (BrokenRunnerExit, ExitReason, RunnerExit, read_runner_exit,
                                              runner_exit_path, write_runner_exit)
from nanogpt_tui.agents.events import EventStream
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS, MAX_GPUS, BadField, finite, parse_timestamp
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import BrokenSession, Extension, Session, Transition, read_session, save_session
from nanogpt_tui.validator.retime import RunOutcome
from nanogpt_tui.validator.verdict import OUTCOMES, Verdict, read_verdict, write_verdict

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------- strategies

text = st.text(max_size=30)
names = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
stamps = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2199, 1, 1),
                      timezones=st.just(dt.timezone.utc)).map(M.iso)
hours = st.floats(min_value=1e-6, max_value=1000.0, allow_nan=False, allow_infinity=False)
maybe = lambda s: st.none() | s  # noqa: E731


@st.composite
def sessions(draw) -> Session:
    started = draw(maybe(stamps))
    finished = draw(maybe(stamps)) if started else None
    if started and finished and finished < started:
        started, finished = finished, started
    return Session(
        id=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True)), agent=draw(names),
        strategy=draw(names), strategy_hash=draw(text), anchor=draw(names), target=draw(maybe(names)),
        backend=draw(st.sampled_from(["local", "docker", "slurm"])), host=draw(text), image=draw(maybe(text)),
        gpus=draw(st.integers(1, MAX_GPUS)), budget_gpu_hours=draw(hours), created_at=draw(stamps),
        gpu_ids=draw(st.lists(st.integers(0, 63), unique=True, max_size=8)),
        extensions=draw(st.lists(st.builds(Extension, at=stamps, gpu_hours=hours, reason=text), max_size=3)),
        started_at=started, deadline=draw(maybe(stamps)), finished_at=finished,
        status=draw(st.sampled_from(M.STATUSES)), status_reason=draw(text),
        transitions=draw(st.lists(st.builds(Transition, at=stamps, status=st.sampled_from(M.STATUSES), reason=text),
                                  max_size=4)),
        handle=draw(maybe(text)), facts=draw(st.dictionaries(names, text, max_size=3)),
        exit_code=draw(maybe(st.integers(-255, 255))), agent_model=draw(maybe(text)), agent_effort=draw(maybe(text)),
        host_forced=draw(st.booleans()), config=draw(st.dictionaries(names, st.integers() | text, max_size=3)),
    )


# For each field of session.json: values it must refuse (wrong type, out of range, not finite, bad timestamp).
BAD_SESSION_VALUES = {
    "id": [5, None, "", "../escape", "has space"],
    "agent": [3, None, ""],
    "anchor": [[], ""],
    "backend": [1, "Docker Engine"],
    "gpus": [0, -5, 1.5, "8", True, MAX_GPUS + 1, None],
    "budget_gpu_hours": [0, -5, "nan", None, MAX_GPU_HOURS * 2, True, [1]],
    "created_at": ["yesterday", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z", 17, None, "9999-12-31T23:59:59Z"],
    "started_at": ["yesterday", 0, "2026-13-01T00:00:00Z"],
    "finished_at": ["soon", 1.5],
    "deadline": ["never", {}],
    "status": ["runnning", None, 3],
    "status_reason": [None, 4],
    "transitions": ["many", [{"at": "x", "status": "running", "reason": ""}], [{"status": "running"}], [3]],
    "extensions": [{}, [{"at": "2026-01-01T00:00:00Z", "gpu_hours": -1}],
                   [{"at": "2026-01-01T00:00:00Z", "gpu_hours": "lots"}]],
    "gpu_ids": [[-1], ["0"], [0, 0], "0,1", [True]],
    "handle": [5, [], {}],
    "facts": ["job 5", {"job": 5}, []],
    "exit_code": ["0", 1.5],
    "host_forced": ["yes", 1],
    "config": ["{}", []],
    "schema_version": [2, "1", None, 1.0],
}


def _folder(root: Path, session_id: str) -> Path:
    folder = root / session_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------------------------- session.json

@FAST
@given(sessions())
def test_a_valid_session_file_round_trips_unchanged(session):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), session.id)
        save_session(folder, session)
        read = read_session(folder)
        assert isinstance(read, Session), read
        assert read.to_dict() == session.to_dict()


@FAST
@given(sessions(), st.data())
def test_one_bad_field_makes_a_broken_session_naming_that_field(session, data):
    field = data.draw(st.sampled_from(sorted(BAD_SESSION_VALUES)))
    bad = data.draw(st.sampled_from(BAD_SESSION_VALUES[field]))
    raw = session.to_dict()
    if field == "finished_at" or field == "started_at":
        raw["started_at"] = raw["started_at"] or "2026-01-01T00:00:00Z"
    if field == "budget_gpu_hours" and bad == "nan":
        text = json.dumps(raw).replace(f'"budget_gpu_hours": {json.dumps(raw["budget_gpu_hours"])}',
                                       '"budget_gpu_hours": NaN')
    else:
        raw[field] = bad
        text = json.dumps(raw)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), session.id)
        (folder / L.SESSION_FILE).write_text(text)
        read = read_session(folder)
    assert isinstance(read, BrokenSession)
    if bad == "nan":  # JSON has no NaN: the file is refused as JSON, and says what it holds
        assert "NaN" in read.sentence
    else:
        assert read.field is not None and read.field.split("[")[0].split(".")[0] == field, read.sentence
        assert f"`{read.field}`" in read.sentence
    assert str(folder / L.SESSION_FILE) in read.sentence
    assert read.to_dict() == {"id": session.id, "broken": read.sentence}


@FAST
@given(sessions(), st.sampled_from(["id", "agent", "gpus", "budget_gpu_hours", "created_at", "status", "backend",
                                    "schema_version", "anchor", "strategy"]))
def test_a_missing_required_field_is_named(session, field):
    raw = session.to_dict()
    del raw[field]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), session.id)
        (folder / L.SESSION_FILE).write_text(json.dumps(raw))
        read = read_session(folder)
    assert isinstance(read, BrokenSession) and read.field == field and "is missing" in read.sentence


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_make_a_broken_session_never_an_exception(raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), "s1")
        (folder / L.SESSION_FILE).write_bytes(raw)
        read = read_session(folder)
    assert isinstance(read, BrokenSession) and read.id == "s1" and str(folder / L.SESSION_FILE) in read.sentence


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                           max_leaves=20)


@FAST
@given(json_values)
def test_any_json_value_is_a_session_or_a_broken_one(value):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), "s1")
        (folder / L.SESSION_FILE).write_text(json.dumps(value))
        assert isinstance(read_session(folder), BrokenSession)


def test_a_folder_named_otherwise_than_its_id_is_broken(tmp_path):
    session = Session(id="a", agent="x", strategy="default", strategy_hash="", anchor="smoke", target=None,
                      backend="local", host="local", image=None, gpus=1, budget_gpu_hours=1.0,
                      created_at="2026-01-01T00:00:00Z")
    save_session(tmp_path / "b", session)
    read = read_session(tmp_path / "b")
    assert isinstance(read, BrokenSession) and read.field == "id" and "named 'b'" in read.sentence
    with pytest.raises(UserError, match="`id`"):
        M.load_session(tmp_path / "b")


def test_the_issue_s_examples_are_broken_with_their_field(tmp_path):
    base = Session(id="s", agent="x", strategy="default", strategy_hash="", anchor="smoke", target=None,
                   backend="local", host="local", image=None, gpus=1, budget_gpu_hours=1.0,
                   created_at="2026-01-01T00:00:00Z").to_dict()
    for field, value, expected in [("started_at", "yesterday", "`started_at` is 'yesterday', not a timestamp"),
                                   ("budget_gpu_hours", -5, "`budget_gpu_hours` is -5, but must be more than 0"),
                                   ("gpus", 0, "`gpus` is 0, below the least allowed, 1")]:
        (tmp_path / "s").mkdir(exist_ok=True)
        (tmp_path / "s" / L.SESSION_FILE).write_text(json.dumps({**base, field: value}))
        read = read_session(tmp_path / "s")
        assert isinstance(read, BrokenSession) and expected in read.sentence, read


# --------------------------------------------------------------------------------------------- timestamps

@FAST
@given(st.text(max_size=40))
def test_timestamps_parse_strictly_or_name_the_field(value):
    try:
        when = parse_timestamp(value, "at")
    except BadField as err:
        assert err.field == "at"
    else:
        assert when.tzinfo is not None and 2000 <= when.year <= 2200


# --------------------------------------------------------------------------------------------- verdicts

numbers = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
positive = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9)


@st.composite
def verdicts(draw) -> Verdict:
    runs = draw(st.lists(st.builds(
        RunOutcome, index=st.integers(1, 20), status=st.sampled_from(["ok", "crashed", "no-final-line", "timeout"]),
        exit_code=maybe(st.integers(-255, 255)), wall_s=positive, log=text, val_loss=maybe(numbers),
        train_time_ms=maybe(positive), final_step=maybe(st.integers(0, 10 ** 6)),
        total_steps=maybe(st.integers(0, 10 ** 6)), error=maybe(text)), max_size=3))
    return Verdict(
        submission=draw(text), submission_dir=draw(text), verdict_id=draw(names), kind=draw(
            st.sampled_from(["submission", "baseline"])), session_id=draw(maybe(text)), anchor=draw(names),
        target=draw(maybe(names)), started_at=draw(stamps), finished_at=draw(maybe(stamps)),
        code_sha256=draw(st.dictionaries(names, text, max_size=3)),
        static=draw(st.sampled_from([{"ok": True, "violations": []}, {"skipped": "baseline"}])),
        judge={"status": draw(st.sampled_from(["answered", "skipped"])), "usage": {"input_tokens": draw(
            st.integers(0, 10 ** 6))}}, runs=runs, runs_requested=draw(st.integers(0, 20)),
        stats={"n": len(runs), "p_value": draw(maybe(st.floats(0, 1))), "mean_train_time_ms": draw(maybe(positive)),
               "ci95_train_time_ms": draw(maybe(st.lists(maybe(positive), min_size=2, max_size=2))),
               "faster": draw(maybe(st.just({"baseline": "anchor", "p_value": 0.5})))},
        speedup={"seconds_faster": draw(maybe(numbers)), "gap_s": draw(maybe(positive))},
        gpus=draw(st.integers(0, 8)), gpu_seconds=draw(positive), outcome=draw(st.sampled_from(OUTCOMES)),
        valid=draw(st.booleans()), significant=draw(st.booleans()), comparable=draw(st.booleans()),
        new_best=draw(st.booleans()), reasons=draw(st.lists(text, max_size=3)),
    )


BAD_VERDICT_VALUES = {
    "kind": ["other", 3],
    "started_at": ["yesterday", None],
    "stats": ["str", [1]],
    "speedup": ["fast", 2],
    "runs": ["ten", [{"index": 1}], [3]],
    "outcome": ["great"],
    "valid": ["yes"],
    "gpus": [-1, "8"],
    "gpu_seconds": [-1, "x"],
    "reasons": ["one", [3]],
    "judge": ["ok"],
    "early_stop": [True],
}


@FAST
@given(verdicts())
def test_a_valid_verdict_round_trips_unchanged(verdict):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_verdict(Path(tmp), verdict)
        assert read_verdict(path).to_dict() == verdict.to_dict()


@FAST
@given(verdicts(), st.data())
def test_one_bad_verdict_field_is_named(verdict, data):
    field = data.draw(st.sampled_from(sorted(BAD_VERDICT_VALUES)))
    raw = verdict.to_dict()
    raw[field] = data.draw(st.sampled_from(BAD_VERDICT_VALUES[field]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(UserError) as err:
            read_verdict(path)
    assert f"`{field}" in str(err.value) and str(path) in str(err.value)


@FAST
@given(verdicts(), st.sampled_from(["p_value", "mean_train_time_ms"]), st.sampled_from(["str", [], {}]))
def test_a_verdict_s_stats_must_be_numbers(verdict, key, bad):
    raw = verdict.to_dict()
    raw["stats"][key] = bad
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(UserError, match=f"`stats.{key}`"):
            read_verdict(path)


@FAST
@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_verdict_bytes_are_a_user_error_never_another_exception(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.json"
        path.write_bytes(raw)
        with pytest.raises(UserError, match="The verdict"):
            read_verdict(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(bad):
    with pytest.raises(BadField, match="`x` is .*, not a finite number"):
        finite(bad, "x")


# --------------------------------------------------------------------------------------------- deadline.json

@FAST
@given(st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2199, 1, 1),
                    timezones=st.just(dt.timezone.utc)),
       st.integers(1, MAX_GPUS), hours, st.floats(0, 3600))
def test_a_valid_deadline_round_trips(moment, gpus, budget, grace):
    with tempfile.TemporaryDirectory() as tmp:
        write_deadline(Path(tmp), moment, gpus=gpus, budget_gpu_hours=budget, grace_s=grace)
        got = read_deadline(Path(tmp))
    assert abs(got.epoch - moment.timestamp()) < 1e-3 and (got.gpus, got.budget_gpu_hours, got.grace_s) == (
        gpus, budget, grace)


BAD_DEADLINE_VALUES = {"deadline_epoch": [True, "soon", -1e12, 1e15], "grace_s": [-1, "30", 1e9],
                       "gpus": [0, "8", 2.5], "budget_gpu_hours": [0, "lots", -1], "schema_version": [2, "1"]}


@FAST
@given(st.data())
def test_one_bad_deadline_field_is_named(data):
    field = data.draw(st.sampled_from(sorted(BAD_DEADLINE_VALUES)))
    raw = {"schema_version": 1, "deadline_epoch": 1.8e9, "gpus": 1, "budget_gpu_hours": 1.0, "grace_s": 5.0,
           field: data.draw(st.sampled_from(BAD_DEADLINE_VALUES[field]))}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / L.DEADLINE_FILE).write_text(json.dumps(raw))
        with pytest.raises(DeadlineError) as err:
            read_deadline(Path(tmp))
    assert err.value.field == field and f"field {field!r}" in str(err.value)


@FAST
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_deadline_bytes_are_a_deadline_error_never_another_exception(raw):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / L.DEADLINE_FILE).write_bytes(raw)
        with pytest.raises(DeadlineError):
            read_deadline(Path(tmp))
        assert read_deadline_or_none(Path(tmp)) is None


# --------------------------------------------------------------------------------------------- runner_exit.json

@FAST
@given(st.sampled_from(list(ExitReason)), st.integers(-255, 255), maybe(st.integers(-255, 255)))
def test_a_runner_exit_round_trips(reason, code, agent_code):
    with tempfile.TemporaryDirectory() as tmp:
        write_runner_exit(Path(tmp), reason, code, agent_code)
        got = read_runner_exit(Path(tmp))
    assert isinstance(got, RunnerExit) and (got.reason, got.exit_code, got.agent_exit_code) == (
        reason, code, agent_code)
    parse_timestamp(got.at)


@FAST
@given(st.sampled_from(["reason", "exit_code", "agent_exit_code", "at", "schema_version"]), st.data())
def test_one_bad_runner_exit_field_is_named(field, data):
    bad = {"reason": [3, "", None], "exit_code": ["0", 1.5, True], "agent_exit_code": ["x", 2 ** 40],
           "at": ["later", 5], "schema_version": [0, "1"]}[field]
    raw = {"schema_version": 1, "reason": "deadline", "exit_code": 3, "at": "2026-01-01T00:00:00Z",
           field: data.draw(st.sampled_from(bad))}
    with tempfile.TemporaryDirectory() as tmp:
        runner_exit_path(Path(tmp)).write_text(json.dumps(raw))
        got = read_runner_exit(Path(tmp))
    assert isinstance(got, BrokenRunnerExit) and got.field == field and f"`{field}`" in got.sentence


@FAST
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_runner_exit_bytes_are_broken_never_an_exception(raw):
    with tempfile.TemporaryDirectory() as tmp:
        runner_exit_path(Path(tmp)).write_bytes(raw)
        got = read_runner_exit(Path(tmp))
    # Only an object with a text `reason` (and nothing bad) is a record; anything else is broken.
    assert isinstance(got, BrokenRunnerExit) or isinstance(got, RunnerExit) and b"reason" in raw


# --------------------------------------------------------------------------------------------- events.jsonl

def test_a_large_valid_event_is_accepted_up_to_the_stated_limit(tmp_path):
    path = tmp_path / L.EVENTS_FILE
    big = {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "x" * 10 ** 6}]}}
    path.write_text(json.dumps(big) + "\n")
    events = EventStream(path).read_new()
    assert [(e.type, e.malformed) for e in events] == [("message", False)]


@FAST
@given(st.lists(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), max_size=8))
def test_random_event_lines_are_events_or_malformed_never_an_exception(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / L.EVENTS_FILE
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        events = EventStream(path).read_new(final=True)
    assert all(isinstance(e.type, str) for e in events)
