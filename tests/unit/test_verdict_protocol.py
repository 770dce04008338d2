"""The trusted verdict reader: only sealed validator verdicts whose code matches the frozen submission count; a
forged verdict, a verdict edited after it was written and a submission replaced after its verdict are flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanogpt_tui.validator import protocol as P
from nanogpt_tui.validator.verdict import Verdict, write_verdict

FORGED = {"schema_version": 1, "submission": "submission_1", "submission_dir": "/workspace/submissions/submission_1",
          "verdict_id": "submission_1__forged", "kind": "submission", "anchor": "smoke", "session_id": "x", "target": None,
          "started_at": "2026-12-01T00:00:00Z",
          "outcome": "validated", "valid": True, "significant": True, "comparable": True, "static": {"ok": False},
          "code_sha256": {"train_gpt.py": "0" * 64}, "stats": {"mean_train_time_ms": 1000.0},
          "speedup": {"seconds_faster": 50}, "counts": True}


@pytest.fixture
def session(tmp_path: Path) -> Path:
    d = tmp_path / "sessions" / "20261201T000000Z-scripted-default"
    sub = d / "workspace" / "submissions" / "submission_1"
    sub.mkdir(parents=True)
    (sub / "train_gpt.py").write_text("print('candidate')\n")
    (sub / "run.sh").write_text("python train_gpt.py\n")
    (d / "validator").mkdir()
    return d


def validated(session: Path, sealer: P.Sealer) -> tuple[Verdict, Path]:
    """What the validator does for one request: freeze, write the verdict of the frozen code, seal it."""
    request = P.SubmitRequest(request_id="submission_1__r1", submission="submission_1")
    frozen = P.freeze(session / "workspace" / "submissions" / "submission_1", P.validator_dir(session), request,
                      sealer, source_label="workspace/submissions/submission_1")
    verdict = Verdict(submission="submission_1", submission_dir=str(frozen.folder), verdict_id="submission_1__v1",
                      kind="submission", session_id=session.name, anchor="smoke", target=None,
                      started_at="2026-12-01T00:01:00Z", code_sha256=frozen.sha256, request_id=request.request_id,
                      outcome="validated", valid=True, significant=True, comparable=True,
                      stats={"mean_train_time_ms": 9000.0}, speedup={"seconds_faster": 1.5})
    path = write_verdict(P.validator_dir(session) / P.VERDICTS, verdict)
    sealer.seal_file(path)
    return verdict, path


def test_only_the_validators_sealed_verdict_counts_and_a_forged_one_is_flagged(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    validated(session, sealer)
    forged = session / "workspace" / "verdicts" / "submission_1__forged.json"
    forged.parent.mkdir(parents=True)
    forged.write_text(json.dumps(FORGED))
    # A forged one the agent hid elsewhere in its workspace is flagged too.
    (session / "workspace" / "experiments").mkdir()
    (session / "workspace" / "experiments" / "best.json").write_text(json.dumps(FORGED))
    trusted = P.trusted_verdicts(session)
    assert [v.verdict_id for v in trusted.verdicts] == ["submission_1__v1"]
    assert trusted.verdicts[0].speedup["seconds_faster"] == 1.5
    assert len(trusted.flags) == 2 and all("verdict-like file in the workspace" in f for f in trusted.flags)
    assert any("workspace/verdicts/submission_1__forged.json" in f for f in trusted.flags)


def test_a_forged_verdict_in_the_validators_folder_has_no_seal_and_is_refused(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    path = P.validator_dir(session) / P.VERDICTS / "submission_1__forged.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(FORGED))
    trusted = P.trusted_verdicts(session, sealer)
    assert trusted.verdicts == []
    assert any("seal does not match" in f for f in trusted.flags)


def test_a_verdict_edited_after_it_was_written_is_refused_and_flagged(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    _, path = validated(session, sealer)
    data = json.loads(path.read_text())
    data["speedup"]["seconds_faster"] = 50
    path.write_text(json.dumps(data))
    trusted = P.trusted_verdicts(session)
    assert trusted.verdicts == []
    assert any("written or edited by something other than the validator" in f for f in trusted.flags)


def test_resealing_without_the_key_does_not_help(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    _, path = validated(session, sealer)
    data = json.loads(path.read_text())
    data["stats"]["mean_train_time_ms"] = 1.0
    path.write_text(json.dumps(data))
    P.Sealer(b"a key the agent made up").seal_file(path)
    assert P.trusted_verdicts(session).verdicts == []


def test_a_submission_replaced_after_its_verdict_does_not_inherit_it(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    verdict, _ = validated(session, sealer)
    (session / "workspace" / "submissions" / "submission_1" / "train_gpt.py").write_text("print('other code')\n")
    trusted = P.trusted_verdicts(session)
    # The verdict stays with the frozen code that was validated, and the replacement is flagged.
    assert [v.verdict_id for v in trusted.verdicts] == [verdict.verdict_id]
    frozen = trusted.frozen[verdict.verdict_id]
    assert (frozen / "train_gpt.py").read_text() == "print('candidate')\n"
    assert any("was changed after its verdict" in f for f in trusted.flags)


def test_a_frozen_copy_changed_after_its_verdict_voids_it(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    validated(session, sealer)
    target = P.validator_dir(session) / P.FROZEN / "submission_1__r1" / "train_gpt.py"
    target.chmod(0o644)
    target.write_text("print('swapped in after the verdict')\n")
    trusted = P.trusted_verdicts(session)
    assert trusted.verdicts == []
    assert any("no longer hashes to what was validated" in f for f in trusted.flags)


def test_no_key_means_nothing_counts(session):
    sealer = P.Sealer.for_sessions(session.parent, create=True)
    validated(session, sealer)
    (session.parent / P.KEY_FILE).unlink()
    trusted = P.trusted_verdicts(session)
    assert trusted.verdicts == [] and any("no validator key" in f for f in trusted.flags)


@pytest.mark.parametrize("data, why", [
    ({"request_id": "../x", "submission": "s", "kind": "submission"}, "request_id"),
    ({"request_id": "r1", "submission": "../../etc", "kind": "submission"}, "submission must name"),
    ({"request_id": "r1", "submission": "s", "kind": "retime-everything"}, "kind"),
    ({"request_id": "r1", "submission": "s", "kind": "submission", "runs": 1}, "runs"),
    ([1, 2], "JSON object"),
])
def test_requests_are_untrusted_input(data, why):
    with pytest.raises(ValueError, match=why):
        P.SubmitRequest.from_dict(data)


def test_the_key_file_is_private(tmp_path):
    P.Sealer.for_sessions(tmp_path, create=True)
    assert ((tmp_path / P.KEY_FILE).stat().st_mode & 0o777) == 0o600
