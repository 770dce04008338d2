"""The comparison rules: each compares the candidate's facts with the anchor's and returns the violations."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from nanogpt_tui.validator.rules.facts import FileFacts, Site
from nanogpt_tui.validator.rules.loop import clock_tampering_violations, fixed_steps_violations
from nanogpt_tui.validator.rules.model import WHOLE_FILE, Violation
from nanogpt_tui.validator.rules.names import ENTRY_SCRIPT, RECOMPILE_KEYS, RUN_SCRIPT
from nanogpt_tui.validator.rules.paths import DIFFERENT, JUDGE, compare_data_paths, resolve_data_path
from nanogpt_tui.validator.rules.program import Program
from nanogpt_tui.validator.rules.pyast import MISSING, names_in, same_value, text_of
from nanogpt_tui.validator.rules.shell import Launch, torchrun_launch
from nanogpt_tui.validator.rules.trace import TimingFacts, preceded_by_sync


@dataclass
class Side:
    """One folder as the rules compare it: its program, its per-file facts and its timing facts."""

    program: Program
    files: FileFacts
    timing: TimingFacts


def syntax_violations(candidate: Program) -> list[Violation]:
    out = []
    for sf in candidate.files:
        if sf.error is not None:
            line = sf.error.lineno or WHOLE_FILE
            detail = sf.error.msg if hasattr(sf.error, "msg") and sf.error.msg else str(sf.error)
            out.append(Violation("syntax", sf.rel, line,
                                 f"{sf.rel} does not parse ({detail}), so the run would fail; fix the syntax error."))
    return out


def _is_coordinate_descent(key: str) -> bool:
    return "coordinate_descent_tuning" in key.lower()


def _enabled(site: Site) -> bool:
    """Whether a setting's value turns a flag on; unknown (non-literal) values count as on."""
    value = site.literal
    if value is MISSING:
        return True
    if isinstance(value, str):
        return value.strip().lower() not in {"", "0", "false", "no", "off"}
    return bool(value)


def compile_flag_violations(a: Side, c: Side) -> list[Violation]:
    allowed = {(s.key, s.value) for s in a.files.compile_flags}
    anchor_flags = sorted({f"{s.key}={s.value}" for s in a.files.compile_flags})
    shown = ", ".join(anchor_flags) if anchor_flags else "no flags"
    out = []
    for s in c.files.compile_flags:
        if _is_coordinate_descent(s.key):
            continue  # reported by coordinate-descent
        if (s.key, s.value) in allowed:
            continue
        if s.key == "**":
            msg = (f"torch.compile gets keyword arguments from `{s.text}`, which cannot be checked statically; "
                   f"pass the anchor's flags explicitly ({shown}).")
        else:
            msg = (f"torch.compile is called with {s.key}={s.value}, a flag the anchor does not use; "
                   f"use only the anchor's compile flags ({shown}).")
        out.append(Violation("compile-flags", s.file, s.line, msg))
    return out


def compiler_config_violations(a: Side, c: Side) -> list[Violation]:
    allowed = {(s.key, s.value) for s in a.files.settings}
    out = []
    for s in c.files.settings:
        if s.key in RECOMPILE_KEYS or _is_coordinate_descent(s.key):
            continue  # their own rules
        if (s.key, s.value) in allowed:
            continue
        name = s.key[4:] if s.key.startswith("env:") else s.key
        where = "environment variable" if s.key.startswith("env:") else "compiler setting"
        anchor_values = sorted({x.value for x in a.files.settings if x.key == s.key})
        had = f" (the anchor sets {anchor_values[0]})" if anchor_values else ""
        out.append(Violation("compiler-config", s.file, s.line,
                             f"The {where} {name} = {s.text} is not in the anchor{had}; "
                             "remove it and keep the anchor's compiler configuration."))
    return out


def recompile_limit_violations(a: Side, c: Side) -> list[Violation]:
    anchor_sites = [s for s in a.files.settings if s.key in RECOMPILE_KEYS]
    cand_sites = [s for s in c.files.settings if s.key in RECOMPILE_KEYS]
    anchor_values = {s.value for s in anchor_sites}
    out = []
    for s in cand_sites:
        if s.value not in anchor_values:
            expected = f"the anchor's {sorted(anchor_values)[0]}" if anchor_values else "the default (the anchor sets none)"
            out.append(Violation("recompile-limit", s.file, s.line,
                                 f"recompile_limit is set to {s.text}; keep {expected}."))
    if anchor_sites and not cand_sites:
        entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
        out.append(Violation("recompile-limit", entry, WHOLE_FILE,
                             f"The anchor sets torch._dynamo.config.recompile_limit = {anchor_sites[0].value} and the "
                             "candidate no longer does; keep that setting."))
    return out


def coordinate_descent_violations(a: Side, c: Side) -> list[Violation]:
    out = []
    for s in list(c.files.settings) + list(c.files.compile_flags):
        if _is_coordinate_descent(s.key) and _enabled(s):
            out.append(Violation("coordinate-descent", s.file, s.line,
                                 f"coordinate_descent_tuning is enabled ({s.key} = {s.text}); it is banned because "
                                 "it makes compilation take about 30 minutes, so remove it."))
    return out


def definition_violations(a: Side, c: Side, names: Iterable[str], rule: str, what: str,
                          questions: list[Violation] | None = None) -> list[Violation]:
    out = []
    entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
    for name in names:
        if name.endswith("_files"):
            a_path, c_path = resolve_data_path(a.program, name), resolve_data_path(c.program, name)
            if a_path is not None and c_path is not None:
                # Both say which files they read: compare those, however the path is spelled.
                same = compare_data_paths(a_path.pattern, c_path.pattern)
                line = c_path.changed_line(a_path)
                if same == DIFFERENT:
                    out.append(Violation(rule, c_path.file, line,
                                         f"{name} resolves to {c_path.pattern!r} instead of the anchor's "
                                         f"{a_path.pattern!r}; {what}."))
                elif same == JUDGE and questions is not None:
                    questions.append(Violation(rule, c_path.file, line,
                                               f"{name} resolves to {c_path.pattern!r}, an absolute folder outside "
                                               f"the data volume, where the anchor reads {a_path.pattern!r}; the "
                                               "judge decides whether these are the same files."))
                continue
        adefs = [d for d in a.files.definitions if d.name == name]
        cdefs = [d for d in c.files.definitions if d.name == name]
        a_literals = [d.literal for d in adefs if d.literal is not MISSING]
        a_exprs = {d.text for d in adefs if d.literal is MISSING}
        for d in cdefs:
            if d.prefix is not None and any(x.prefix == d.prefix for x in adefs):
                continue  # the same data folder joined differently (os.path.join, pathlib, f-string): same files
            if d.literal is not MISSING:
                if any(same_value(d.literal, v) for v in a_literals):
                    continue
                if a_literals:
                    expected = f"the anchor's {a_literals[0]!r}"
                else:
                    expected = "what the anchor computes"
                out.append(Violation(rule, d.file, d.line,
                                     f"{name} is {d.literal!r} here instead of {expected}; {what}."))
            elif d.text not in a_exprs:
                out.append(Violation(rule, d.file, d.line,
                                     f"{name} is set to `{_shorten(d.text)}`, which the anchor does not do; {what}."))
        if a_literals and not cdefs:
            out.append(Violation(rule, entry, WHOLE_FILE,
                                 f"{name} (the anchor's {a_literals[0]!r}) is no longer defined; {what}."))
    return out


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loop_line(side: Side) -> tuple[str, int]:
    loop = side.timing.loop
    if loop is None:
        entry = side.program.entry
        return (entry.rel if entry else ENTRY_SCRIPT, WHOLE_FILE)
    return loop.sf.rel, loop.node.lineno


def timing_violations(a: Side, c: Side) -> list[Violation]:
    """timing-clock, val-loader, val-reduce, warmup and fixed-steps: the rules that need the timed loop."""
    at, ct = a.timing, c.timing
    out: list[Violation] = []
    if at.loop is None:
        # Nothing in the anchor to compare with; still reject early stops in whatever loop the candidate times.
        if ct.loop is not None:
            out += fixed_steps_violations(c.program, ct.loop, _clock_keys(ct))
        return out
    if ct.loop is None:
        entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
        out.append(Violation("timing-clock", entry, WHOLE_FILE,
                             "No training loop that runs backward passes and reads the clock was found; keep the "
                             "anchor's timed loop (accumulate time.perf_counter() intervals, paused for validation)."))
        return out
    file, line = _loop_line(c)

    # timing-clock
    if at.stops and not ct.stops:
        out.append(Violation("timing-clock", file, line,
                             "The training loop no longer stops the clock by adding the elapsed time to an "
                             "accumulator before validation; keep the anchor's `training_time_ms += ...` pause."))
    if at.stops and ct.stops:
        if at.restarted and not ct.restarted:
            stop = ct.events[ct.stops[0]]
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is stopped here but never restarted with a fresh reading later in the "
                                 "training loop; restart it after validation as the anchor does."))
        if at.sync_before_stop and not ct.sync_before_stop:
            stop = next(ct.events[i] for i in ct.stops if not preceded_by_sync(ct.events, i))
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is read without a torch.cuda.synchronize() just before it, so queued "
                                 "GPU work escapes the measurement; synchronize before stopping the clock."))
        if at.sync_before_start and ct.restarted and not ct.sync_before_start:
            start = next(ct.events[end] for _, end in ct.regions
                         if end < ct.loop.exit and not preceded_by_sync(ct.events, end))
            out.append(Violation("timing-clock", start.sf.rel, start.node.lineno,  # type: ignore[attr-defined]
                                 "The clock restarts without a torch.cuda.synchronize() just before it, so "
                                 "validation work leaks into the timed steps; synchronize before restarting."))
    if ct.stops:
        out += clock_tampering_violations(c.program, ct)
    if at.stops and not at.pauses_without_validation:
        for i in ct.pauses_without_validation:
            stop = ct.events[i]
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is paused here around work that is not validation; only validation may "
                                 "run while the clock is stopped."))

    # val-loader
    if at.val_loader_paused and not ct.val_loader_paused:
        if ct.val_loader_in_loop:
            ev = next(e for e in ct.events[ct.loop.enter:ct.loop.exit] if e.kind == "val_loader")
            out.append(Violation("val-loader", ev.sf.rel, ev.node.lineno,  # type: ignore[attr-defined]
                                 "The validation loader is built while the training clock is running; stop the "
                                 "clock before validation as the anchor does."))
        else:
            out.append(Violation("val-loader", file, line,
                                 "The training loop does not build a fresh validation loader from val_files for each "
                                 "validation; create it inside the validation block as the anchor does."))
    elif at.val_loader_in_loop and not ct.val_loader_in_loop:
        out.append(Violation("val-loader", file, line,
                             "The training loop does not build a fresh validation loader from val_files for each "
                             "validation; create it inside the validation block as the anchor does."))

    # val-reduce (whether validation runs while the clock is stopped is val-loader's and timing-clock's concern)
    if at.averaged_reduce and not ct.averaged_reduce:
        out.append(Violation("val-reduce", file, line,
                             "The validation loss is not both divided by the number of validation steps and averaged "
                             "across ranks with dist.all_reduce/dist.reduce in the training loop; keep the anchor's "
                             "averaging."))

    # A restart of the clock that follows no stop drops the time since the last start.
    if ct.stray_starts and not at.stray_starts:
        ev = ct.events[ct.stray_starts[0]]
        out.append(Violation("timing-clock", ev.sf.rel, ev.node.lineno,  # type: ignore[attr-defined]
                             f"`{ev.key}` is restarted inside the timed loop without the elapsed time being added "
                             "first, so that time is never counted; restart the clock only after stopping it."))

    # How many validation steps run: the anchor's count, not an arithmetic change of it.
    anchor_iters = {text_of(node.iter) for _, node in at.validation_loops}
    anchor_names = set().union(*(names_in(node.iter) for _, node in at.validation_loops)) if anchor_iters else set()
    for sf_, node in ct.validation_loops:
        text = text_of(node.iter)
        if anchor_iters and text not in anchor_iters and isinstance(node.iter, ast.Call) and any(
                isinstance(arg, ast.BinOp) and names_in(arg) & anchor_names for arg in node.iter.args):
            out.append(Violation("val-reduce", sf_.rel, node.lineno,
                                 f"The validation runs `{_shorten(text)}` steps where the anchor runs "
                                 f"`{_shorten(sorted(anchor_iters)[0])}`, so the loss is averaged over other "
                                 "batches; validate on the anchor's number of steps."))

    # warmup
    if at.warmup is not None:
        if ct.warmup is None:
            out.append(Violation("warmup", file, line,
                                 "No warm-up loop runs before the timed training loop; warm up as the anchor does and "
                                 "restore the initial state afterwards."))
        else:
            wfile, wline = ct.warmup.sf.rel, ct.warmup.node.lineno
            if at.warmup_count is not None and ct.warmup_count is not None and at.warmup_count != ct.warmup_count:
                out.append(Violation("warmup", wfile, wline,
                                     f"The warm-up runs {ct.warmup_count} steps instead of the anchor's "
                                     f"{at.warmup_count}; keep the anchor's warm-up length."))
            if at.saved and not ct.saved:
                out.append(Violation("warmup", wfile, wline,
                                     "The initial model and optimizer state is not saved (state_dict) before the "
                                     "warm-up; save it so that warm-up steps do not count as training."))
            if at.restores and not ct.restores:
                out.append(Violation("warmup", wfile, wline,
                                     "The state is not restored (load_state_dict) after the warm-up, so the warm-up "
                                     "steps train the model untimed; restore the saved initial state."))
            elif ct.restores < min(at.restores, 2):
                out.append(Violation("warmup", wfile, wline,
                                     f"Only {ct.restores} state restore after the warm-up where the anchor has "
                                     f"{at.restores} (model and optimizers); restore everything the anchor restores."))

    if ct.untimed_backward is not None and at.untimed_backward is None:
        ev = ct.untimed_backward
        out.append(Violation("warmup", ev.sf.rel, ev.node.lineno,  # type: ignore[attr-defined]
                             "Backward passes run after the warm-up state is restored and before the timed loop, so "
                             "this training is never timed; train only inside the timed loop."))

    # fixed-steps (presence rule: whatever the anchor itself does is not held against the candidate)
    anchor_fixed = {v.message for v in fixed_steps_violations(a.program, at.loop, _clock_keys(at))}
    out += [v for v in fixed_steps_violations(c.program, ct.loop, _clock_keys(ct)) if v.message not in anchor_fixed]
    return out


def _clock_keys(t: TimingFacts) -> set[str]:
    keys = {t.events[i].key for i in t.stops}
    if t.loop is not None:
        keys |= {t.events[end].key for _, end in t.regions if end < t.loop.exit}
    return keys


def run_deps_violations(a: Side, c: Side) -> list[Violation]:
    allowed = {s.value for s in a.files.installs}
    out = []
    for s in c.files.installs:
        if s.value in allowed:
            continue
        where = "run.sh" if s.file == RUN_SCRIPT else "the training code"
        out.append(Violation("run-deps", s.file, s.line,
                             f"{where} runs `{_shorten(s.value)}` ({s.key}), which changes the installed packages; "
                             "dependencies are fixed, so remove it."))
    return out


def _launches(program: Program) -> list[Launch]:
    exported: dict[str, str] = {}
    exports_by_line = sorted(program.run_sh_exports)
    out = []
    for cmd in program.run_sh or []:
        for line, name, value in exports_by_line:
            if line <= cmd.line:
                exported[name] = value
        launch = torchrun_launch(cmd, exported)
        if launch:
            out.append(launch)
    return out


def launch_violations(a: Side, c: Side) -> list[Violation]:
    if a.program.run_sh is None:
        return []
    a_launches = _launches(a.program)
    if not a_launches:
        return []
    if c.program.run_sh is None:
        return [Violation("launch-shape", RUN_SCRIPT, WHOLE_FILE,
                          "The candidate has no run.sh; keep the anchor's run.sh and its torchrun launch.")]
    c_launches = _launches(c.program)
    if not c_launches:
        return [Violation("launch-shape", RUN_SCRIPT, WHOLE_FILE,
                          "run.sh no longer launches training with torchrun; keep the anchor's launch "
                          f"(--nproc_per_node={a_launches[0].nproc}).")]
    ref = a_launches[0]
    out = []
    for launch in c_launches:
        if launch.nproc != ref.nproc:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"torchrun runs with --nproc_per_node={launch.nproc} instead of the anchor's "
                                 f"{ref.nproc}; keep the anchor's GPU count."))
        if launch.nnodes != ref.nnodes:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"torchrun runs with --nnodes={launch.nnodes} instead of the anchor's {ref.nnodes}; "
                                 "keep the anchor's launch shape."))
        if launch.standalone != ref.standalone:
            state = "adds" if launch.standalone else "drops"
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"The torchrun launch {state} --standalone; keep the anchor's launch options."))
        if launch.visible_devices != ref.visible_devices:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"CUDA_VISIBLE_DEVICES is {launch.visible_devices!r} for the launch instead of the "
                                 f"anchor's {ref.visible_devices!r}; keep the GPUs the anchor uses."))
    return out


def _warmup_iterable(side: Side) -> str | None:
    """The text of what the warm-up loop iterates, with a name assigned once replaced by its value."""
    warm = side.timing.warmup
    if warm is None or not isinstance(warm.node, (ast.For, ast.AsyncFor)):
        return None
    it = warm.node.iter
    if isinstance(it, ast.Name):
        values = warm.sf.assigns.get(it.id, [])
        if len(values) == 1:
            it = values[0]
    return text_of(it)


def warmup_questions(a: Side, c: Side) -> list[Violation]:
    """A warm-up step list changed where a count is not a constant: the judge decides (the restore rules still
    apply as violations)."""
    at, ct = a.timing, c.timing
    if at.warmup is None or ct.warmup is None:
        return []
    if at.warmup_count is not None and ct.warmup_count is not None:
        return []  # compared by the warmup rule
    anchor_steps, steps = _warmup_iterable(a), _warmup_iterable(c)
    if anchor_steps is None or steps is None or anchor_steps == steps:
        return []
    uncounted = "neither is a constant count" if at.warmup_count is None and ct.warmup_count is None else \
        ("the anchor's is not a constant count" if at.warmup_count is None else "this one is not a constant count")
    return [Violation("warmup", ct.warmup.sf.rel, ct.warmup.node.lineno,
                      f"The warm-up iterates `{_shorten(steps)}` where the anchor iterates `{_shorten(anchor_steps)}`, "
                      f"and {uncounted}; the judge decides whether it is still the anchor's warm-up.")]
