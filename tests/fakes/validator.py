"""Verdicts written the way the validator apart from the agent writes them (frozen code, sealed verdict), for test
sessions built on disk; the product's own freeze and seal, no shortcut."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nanogpt_tui.validator import protocol as P
from nanogpt_tui.validator.verdict import Verdict, write_verdict


def publish_verdict(session_dir: Path, verdict: Verdict, *, source: Path | None = None,
                    code: dict[str, str] | None = None) -> Path:
    """Freeze `source` (or `code`, or a placeholder train_gpt.py) as the verdict's submission, point the verdict at
    it (request id and code hashes) and write and seal it in the session's validator/ folder."""
    session_dir = Path(session_dir)
    sealer = P.Sealer.for_sessions(session_dir.parent, create=True)
    request = P.SubmitRequest(request_id=f"{verdict.verdict_id}__request", submission=verdict.submission,
                              kind=verdict.kind if verdict.kind in ("submission", "baseline") else "submission")
    with tempfile.TemporaryDirectory() as tmp:
        if source is None or not Path(source).is_dir():
            source = Path(tmp)
            for name, text in (code or {"train_gpt.py": f"# {verdict.submission}\n"}).items():
                (source / name).write_text(text)
        frozen = P.freeze(Path(source), P.validator_dir(session_dir), request, sealer,
                          source_label=f"workspace/submissions/{verdict.submission}")
    verdict.request_id = request.request_id
    verdict.code_sha256 = frozen.sha256
    path = write_verdict(P.validator_dir(session_dir) / P.VERDICTS, verdict)
    sealer.seal_file(path)
    return path
