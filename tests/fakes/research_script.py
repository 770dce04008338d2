"""Research trajectories the scripted model server plays through the real CLIs' own tools (tests only).

A `Trajectory` is the model's side of a short NanoGPT-Bench session on the smoke record, written once for both
APIs: read train_gpt.py, edit `num_iterations` (the value read from the file as the CLI returned it), copy the
candidate to submissions/submission_1, run `submit` on it, read the verdict it printed and decide the next idea
from it, then, on each later CLI invocation (a resume), run a long command that the test stops (the deadline, a
kill). Each step checks the tool result it received and raises `UnexpectedTurn` (the server records it; the test
fails) when the CLI did not do what was asked. Faults (429, 500, a cut stream, a hang) are played before chosen
steps; the CLI must retry past them.

The tool names and arguments are the CLIs' own: Claude Code's Read / Edit / Bash (input `file_path`,
`old_string`/`new_string`, `command`/`timeout`), Codex's `exec_command` (`cmd`, `yield_time_ms`) and `write_stdin`
(`session_id`, `chars`, `yield_time_ms`) for a command that outlives its first yield.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from tests.fakes.model_server import ANTHROPIC, Fault, Reply, ToolCall, Turn, Usage

WORKSPACE = "/workspace"
NUM_ITERATIONS = re.compile(r"num_iterations(?:\s*:\s*int)?\s*=\s*(\d+)")
RUNNING_SESSION = re.compile(r"Process running with session ID (\d+)")


class UnexpectedTurn(AssertionError):
    """The CLI sent something the trajectory did not expect (the test fails on it)."""


@dataclass
class Trajectory:
    """The model's plan for one session; `__call__` is the server's script."""

    submit_runs: int = 3
    new_iterations: int = 150
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # step name -> faults played before it
    # A long-running command (Claude Code's Bash tool refuses a standalone `sleep N` and asks for Monitor instead).
    long_command: str = "python3 -c 'import time; time.sleep(600)'"
    steps_done: list[str] = field(default_factory=list)
    verdict_text: str = ""
    invocations_seen: int = 0  # model requests that began a CLI invocation (first prompt or a resume)
    resume_prompts: list[str] = field(default_factory=list)
    long_phase_replies: list[Usage] = field(default_factory=list)  # replies of the invocation the test stops
    long_command_started: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending_faults: dict[str, list[Fault]] = field(default_factory=dict)
    _phase: str = "read"
    _last_results: int = 0

    def __post_init__(self) -> None:
        self._pending_faults = {k: list(v) for k, v in self.faults.items()}

    # --- the script -------------------------------------------------------------------

    def __call__(self, turn: Turn) -> Reply | Fault | None:
        with self._lock:
            return self._answer(turn)

    def _answer(self, turn: Turn) -> Reply | Fault | None:
        new_results = turn.tool_results[self._last_results:]
        fresh_invocation = not new_results
        step = self._phase
        pending = self._pending_faults.get(step)
        if pending:
            return pending.pop(0)
        if fresh_invocation and step not in ("read",):
            # A resume: the CLI came back with the strategy's resume prompt, the earlier work in its history.
            self.invocations_seen += 1
            self.resume_prompts.append(turn.user_texts[-1] if turn.user_texts else "")
            self.long_phase_replies = []  # only the last invocation's replies can go unreported
            if not any("submission_1" in r for _, r in turn.tool_results):
                raise UnexpectedTurn("a resumed conversation lost its earlier tool results")
            self._phase = step = "long"
        self._last_results = len(turn.tool_results)
        handler = getattr(self, f"_step_{step}")
        reply = handler(turn, new_results)
        self.steps_done.append(step)
        return reply

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _claude(turn: Turn) -> bool:
        return turn.api == ANTHROPIC

    def _shell(self, turn: Turn, command: str, *, timeout_s: int = 3600) -> ToolCall:
        if self._claude(turn):
            return ToolCall("Bash", {"command": command, "description": "Run a command in the workspace",
                                     "timeout": timeout_s * 1000})
        return ToolCall("exec_command", {"cmd": command, "yield_time_ms": 30000})

    def _read(self, turn: Turn, path: str) -> ToolCall:
        if self._claude(turn):
            return ToolCall("Read", {"file_path": f"{WORKSPACE}/{path}"})
        return ToolCall("exec_command", {"cmd": f"cat {path}", "yield_time_ms": 10000})

    def _edit(self, turn: Turn, path: str, old: str, new: str) -> ToolCall:
        if self._claude(turn):
            return ToolCall("Edit", {"file_path": f"{WORKSPACE}/{path}", "old_string": old, "new_string": new})
        # Codex edits through the shell here (its apply_patch tool is only offered to some model families).
        return ToolCall("exec_command", {"cmd": f"sed -i 's/{old}/{new}/' {path} && grep -n num_iterations {path}",
                                         "yield_time_ms": 10000})

    def _poll(self, turn: Turn, result: str) -> ToolCall | None:
        """Codex keeps a command that outlives its first yield as a session to poll with write_stdin."""
        if self._claude(turn):
            return None
        running = RUNNING_SESSION.search(result)
        if running is None:
            return None
        return ToolCall("write_stdin", {"session_id": int(running.group(1)), "chars": "", "yield_time_ms": 300000})

    # --- the steps --------------------------------------------------------------------

    def _step_read(self, turn: Turn, results) -> Reply:
        if "Your task" not in turn.conversation and "speedrun" not in turn.conversation:
            raise UnexpectedTurn("the first prompt did not arrive")
        self.invocations_seen += 1
        self._phase = "edit"
        return Reply(reasoning="Start from the anchor's code: read train_gpt.py before changing anything.",
                     text="I will read the training script first.", tool_calls=[self._read(turn, "train_gpt.py")],
                     usage=Usage(2400, 60, 1200, 12))

    def _step_edit(self, turn: Turn, results) -> Reply:
        text = results[-1][1] if results else ""
        found = NUM_ITERATIONS.search(text)
        if found is None:
            raise UnexpectedTurn(f"reading train_gpt.py returned no num_iterations: {text[:200]!r}")
        old = found.group(0)
        new = old.replace(found.group(1), str(self.new_iterations))
        self._phase = "submit"
        return Reply(text=f"The script trains for {found.group(1)} steps; {self.new_iterations} should still reach "
                          "the target on this data. Editing it.",
                     tool_calls=[self._edit(turn, "train_gpt.py", old, new)], usage=Usage(5200, 90, 2400))

    def _step_submit(self, turn: Turn, results) -> Reply:
        text = results[-1][1] if results else ""
        edited = NUM_ITERATIONS.search(text)
        if not ("updated" in text or (edited and edited.group(1) == str(self.new_iterations))):
            raise UnexpectedTurn(f"the edit did not report success: {text[:200]!r}")
        self._phase = "verdict"
        command = ("mkdir -p submissions/submission_1 && cp train_gpt.py run.sh submissions/submission_1/ && "
                   f"submit submissions/submission_1 --runs {self.submit_runs} --judge none")
        return Reply(text="Copying the candidate into a submission folder and validating it.",
                     tool_calls=[self._shell(turn, command)], usage=Usage(5600, 70, 5000))

    def _step_verdict(self, turn: Turn, results) -> Reply:
        text = results[-1][1] if results else ""
        poll = self._poll(turn, text)
        if poll is not None:
            return Reply(tool_calls=[poll], usage=Usage(5800, 20, 5400))
        self.verdict_text += text
        if "verdict: validated" not in text.lower():
            raise UnexpectedTurn(f"submit printed no validated verdict: {text[-400:]!r}")
        self._phase = "next_idea"
        return Reply(reasoning="The shorter schedule validated. Next idea: a larger learning rate.",
                     text="submission_1 validated. Next I will look at the learning rate.",
                     tool_calls=[self._shell(turn, "grep -n 'lr' train_gpt.py | head -5; git diff --stat")],
                     usage=Usage(6400, 80, 5600, 30))

    def _step_next_idea(self, turn: Turn, results) -> Reply:
        text = results[-1][1] if results else ""
        if "train_gpt.py" not in text:
            raise UnexpectedTurn(f"git diff --stat did not show the edit: {text[:200]!r}")
        self._phase = "ended"
        return Reply(text="Validated one change; the learning-rate idea comes next.", usage=Usage(7000, 40, 6400))

    def _step_long(self, turn: Turn, results) -> Reply:
        if results:
            text = results[-1][1]
            if "tool_use_error" in text or "Blocked" in text:
                raise UnexpectedTurn(f"the CLI refused the long command: {text[:200]!r}")
            poll = self._poll(turn, text)
            if poll is not None:
                reply = Reply(tool_calls=[poll], usage=Usage(7400, 20, 7000))
            else:
                self._phase = "ended"
                reply = Reply(text="The long run finished.", usage=Usage(7600, 20, 7000))
        else:
            self.long_command_started.set()
            reply = Reply(text="Running a longer training run to compare schedules.",
                          tool_calls=[self._shell(turn, self.long_command)], usage=Usage(7200, 50, 7000))
        self.long_phase_replies.append(reply.usage)
        return reply

    def _step_ended(self, turn: Turn, results) -> Reply | None:
        raise UnexpectedTurn(f"a model request after the trajectory ended: {turn.user_texts[-1:]!r}")
