"""The trace (the entry script's statements in order, local calls inlined) and the timing facts drawn from it."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nanogpt_tui.validator.rules.names import CLOCKS, MAX_EVENTS, MAX_INLINE_DEPTH
from nanogpt_tui.validator.rules.program import Program, SourceFile
from nanogpt_tui.validator.rules.pyast import (
    MISSING,
    callee_name,
    const_eval,
    names_in,
    same_value,
    text_of,
)


# -----------------------------------------------------------------------------
# The trace: the entry script's statements in order, calls to local functions inlined


@dataclass(frozen=True)
class Event:
    kind: str  # loop_enter, loop_exit, backward, clock, stop, start, sync, val_loader, reduce, div, save, restore
    key: str
    sf: SourceFile
    node: ast.AST
    depth: int
    clock: str = ""  # for clock/stop: the clock function's qualified name


@dataclass
class Span:
    """One loop as met in the trace: its node and the indexes of its enter and exit events."""

    node: ast.For | ast.AsyncFor | ast.While
    sf: SourceFile
    enter: int
    exit: int
    depth: int

    def contains(self, index: int) -> bool:
        return self.enter < index < self.exit


class Tracer:
    def __init__(self, program: Program):
        self.program = program
        self.events: list[Event] = []
        self.stack: list[ast.AST] = []
        self.bindings: list[dict[str, str]] = [{}]  # parameter name -> argument text, per inlined call
        self._calls: dict[int, list[ast.Call]] = {}  # statement id -> its calls in source order
        self._memo: dict[tuple[str, int], object] = {}  # per-node facts that do not depend on the call path
        # Functions whose inlined body emitted nothing, by the most inlining depth left then: inlining them again
        # with no more depth left cannot emit anything either (what the trace emits depends on the call path
        # only through the recursion guard, and a body is recorded only when the guard cut nothing in it). Big
        # records call many same-named helpers (`forward`, `step`): without this the trace grows as their product.
        self._silent: dict[int, int] = {}
        self._guard_cuts = 0
        self.loop_depth = 0

    def run(self, sf: SourceFile) -> list[Event]:
        assert sf.tree is not None
        self._block(sf.tree.body, sf)
        return self.events

    def _memoized(self, what: str, node: ast.AST, compute: Callable[[], object]) -> object:
        key = (what, id(node))
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _key(self, node: ast.AST) -> str:
        """An expression's text, with the parameters of inlined functions replaced by the caller's arguments."""
        if isinstance(node, ast.Name) and node.id in self.bindings[-1]:
            return self.bindings[-1][node.id]
        return self._memoized("text", node, lambda: text_of(node))  # type: ignore[return-value]

    def _bind(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call) -> dict[str, str]:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if isinstance(call.func, ast.Attribute) and params and params[0] in {"self", "cls"}:
            params = params[1:]
        binding: dict[str, str] = {}
        for name, arg in zip(params, call.args):
            if isinstance(arg, ast.Starred):
                break
            binding[name] = self._key(arg)
        names = set(params) | {a.arg for a in fn.args.kwonlyargs}
        for kw in call.keywords:
            if kw.arg in names:
                binding[kw.arg] = self._key(kw.value)
        return binding

    def _emit(self, kind: str, key: str, sf: SourceFile, node: ast.AST, clock: str = "") -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(Event(kind, key, sf, node, self.loop_depth, clock))

    def _block(self, stmts: Iterable[ast.stmt], sf: SourceFile) -> None:
        for stmt in stmts:
            if len(self.events) >= MAX_EVENTS:
                return
            self._stmt(stmt, sf)

    def _stmt(self, stmt: ast.stmt, sf: SourceFile) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            self._emit("loop_enter", "", sf, stmt)
            self.loop_depth += 1
            self._expr(stmt.iter if isinstance(stmt, (ast.For, ast.AsyncFor)) else stmt.test, sf)
            self._block(stmt.body, sf)
            self._block(stmt.orelse, sf)
            self.loop_depth -= 1
            self._emit("loop_exit", "", sf, stmt)
            return
        if isinstance(stmt, ast.If):
            self._expr(stmt.test, sf)
            self._block(stmt.body, sf)
            self._block(stmt.orelse, sf)
            return
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self._expr(item.context_expr, sf)
            self._block(stmt.body, sf)
            return
        if isinstance(stmt, (ast.Try, ast.TryStar)):
            self._block(stmt.body, sf)
            for handler in stmt.handlers:
                self._block(handler.body, sf)
            self._block(stmt.orelse, sf)
            self._block(stmt.finalbody, sf)
            return
        if isinstance(stmt, ast.Match):
            self._expr(stmt.subject, sf)
            for case in stmt.cases:
                self._block(case.body, sf)
            return
        # Simple statements: the calls they make, then what they assign.
        self._expr(stmt, sf)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            self._assignment(stmt, sf)

    def _assignment(self, stmt: ast.Assign | ast.AnnAssign | ast.AugAssign, sf: SourceFile) -> None:
        value = stmt.value
        if value is None:
            return
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if len(targets) != 1 or isinstance(targets[0], (ast.Tuple, ast.List)):
            return
        target = targets[0]
        clock = self._memoized("clock", stmt, lambda: clock_in(value, sf))  # type: ignore[arg-type]
        average = self._memoized("average", stmt, lambda: _is_average(value, sf))  # type: ignore[arg-type]
        if not clock and not average and not isinstance(stmt, ast.AugAssign):
            return  # nothing to emit: skip the target's text (most assignments of a big record)
        key = self._key(target)
        if isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.op, ast.Add) and clock:
                self._emit("stop", key, sf, stmt, clock)
            elif isinstance(stmt.op, (ast.Div, ast.FloorDiv)):
                self._emit("div", key, sf, stmt)
            return
        if clock and isinstance(value, ast.Call) and sf.aliases.qualname(value.func) in CLOCKS:
            self._emit("start", key, sf, stmt, clock)
        elif clock and isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and key in names_in(value):
            self._emit("stop", key, sf, stmt, clock)
        if average:
            self._emit("div", key, sf, stmt)

    def _expr(self, node: ast.AST, sf: SourceFile) -> None:
        calls = self._calls.get(id(node))
        if calls is None:
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            calls.sort(key=lambda c: (getattr(c, "lineno", 0), getattr(c, "col_offset", 0)))
            self._calls[id(node)] = calls
        for call in calls:
            self._call(call, sf)

    def _call(self, node: ast.Call, sf: SourceFile) -> None:
        qual = sf.aliases.qualname(node.func)
        name = callee_name(node)
        if name == "backward" or qual == "torch.autograd.backward":
            self._emit("backward", "", sf, node)
        if qual in CLOCKS:
            self._emit("clock", "", sf, node, qual)
        if name == "synchronize":
            self._emit("sync", "", sf, node)
        if name == "state_dict":
            self._emit("save", "", sf, node)
        if name == "load_state_dict":
            self._emit("restore", "", sf, node)
        if name == "div_" and isinstance(node.func, ast.Attribute):
            self._emit("div", self._key(node.func.value), sf, node)
        if _is_dist_reduce(node, sf):
            arg = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "tensor"), None)
            if arg is not None:
                self._emit("reduce", self._key(arg), sf, node)
        if self._memoized("val_files", node, lambda: any(
                _mentions_val_files(a, sf) for a in list(node.args) + [kw.value for kw in node.keywords])):
            self._emit("val_loader", "", sf, node)
        if qual is not None or name is None:
            return  # a library call (or a computed callee): nothing local to follow
        for target, target_sf in self._local_targets(node, name, sf):
            if target in self.stack:
                self._guard_cuts += 1
                continue
            left = MAX_INLINE_DEPTH - len(self.stack)
            if left <= 0 or self._silent.get(id(target), -1) >= left:
                continue
            events, cuts = len(self.events), self._guard_cuts
            self.stack.append(target)
            self.bindings.append(self._bind(target, node))
            self._block(target.body, target_sf)
            self.bindings.pop()
            self.stack.pop()
            if len(self.events) == events and self._guard_cuts == cuts:
                self._silent[id(target)] = max(self._silent.get(id(target), -1), left)

    def _local_targets(self, node: ast.Call, name: str, sf: SourceFile
                       ) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, SourceFile]]:
        targets = list(self.program.functions.get(name, []))
        if isinstance(node.func, ast.Name) and name in self.program.classes:
            for cls, cls_sf in self.program.classes[name]:
                for stmt in cls.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
                        targets.append((stmt, cls_sf))
        # Definitions in the caller's own file win: two scripts sharing helper names must not multiply the trace.
        local = [t for t in targets if t[1] is sf]
        return local or targets


def clock_in(node: ast.AST, sf: SourceFile) -> str:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            qual = sf.aliases.qualname(n.func)
            if qual in CLOCKS:
                return qual
    return ""


def _is_average(value: ast.expr, sf: SourceFile) -> bool:
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Div, ast.FloorDiv)):
        return True
    if isinstance(value, ast.Call):
        if callee_name(value) == "mean":
            return True
        if sf.aliases.qualname(value.func) in {"torch.mean", "statistics.mean", "numpy.mean"}:
            return True
    return False


def _is_dist_reduce(node: ast.Call, sf: SourceFile) -> bool:
    qual = sf.aliases.qualname(node.func)
    if qual in {"torch.distributed.all_reduce", "torch.distributed.reduce"}:
        return True
    if isinstance(node.func, ast.Attribute) and node.func.attr == "all_reduce":
        return True
    if isinstance(node.func, ast.Attribute) and node.func.attr == "reduce":
        base = sf.aliases.qualname(node.func.value)
        return base == "torch.distributed" or (isinstance(node.func.value, ast.Name) and node.func.value.id == "dist")
    return False


def _mentions_val_files(node: ast.AST, sf: SourceFile, depth: int = 0) -> bool:
    """Whether an expression uses val_files, also through plain names assigned from it (`pattern = args.val_files`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr == "val_files":
            return True
        if isinstance(n, ast.Name):
            if n.id == "val_files":
                return True
            if depth < 2 and any(_is_path_value(v, sf) and _mentions_val_files(v, sf, depth + 1)
                                 for v in sf.assigns.get(n.id, [])):
                return True
    return False


_PATH_BUILDERS = frozenset({"os.path.join", "glob.glob", "pathlib.Path", "str", "sorted", "list", "Path"})


def _is_path_value(value: ast.AST, sf: SourceFile) -> bool:
    """A pattern or file list (`args.val_files`, `sorted(glob.glob(...))`), not a loader built from one."""
    for n in ast.walk(value):
        if isinstance(n, ast.Call):
            qual = sf.aliases.qualname(n.func) or callee_name(n)
            if qual not in _PATH_BUILDERS:
                return False
    return True


def _loop_spans(events: list[Event]) -> list[Span]:
    spans: list[Span] = []
    open_: list[tuple[int, Event]] = []
    for i, ev in enumerate(events):
        if ev.kind == "loop_enter":
            open_.append((i, ev))
        elif ev.kind == "loop_exit" and open_:
            start, enter = open_.pop()
            spans.append(Span(node=enter.node, sf=enter.sf, enter=start, exit=i, depth=enter.depth))  # type: ignore[arg-type]
    for start, enter in open_:  # cut short by MAX_EVENTS
        spans.append(Span(node=enter.node, sf=enter.sf, enter=start, exit=len(events), depth=enter.depth))  # type: ignore[arg-type]
    spans.sort(key=lambda s: s.enter)
    return spans


# -----------------------------------------------------------------------------
# Timing, validation and warm-up facts drawn from the trace


@dataclass
class TimingFacts:
    loop: Span | None = None
    stops: list[int] = field(default_factory=list)
    regions: list[tuple[int, int]] = field(default_factory=list)  # (stop index, restart index or loop exit)
    restarted: bool = False
    sync_before_stop: bool = False
    sync_before_start: bool = False
    val_loader_in_loop: bool = False
    val_loader_paused: bool = False
    averaged_reduce: bool = False
    warmup: Span | None = None
    warmup_count: int | None = None
    saved: bool = False
    restores: int = 0
    # Backward passes after the warm-up's restore and before the timed loop (training nobody times).
    untimed_backward: Event | None = None
    # Paused stretches of the timed loop that hold no validation (e.g. the clock stopped around data loading).
    pauses_without_validation: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Clock restarts inside the timed loop that follow no stop: the time since the last start is dropped.
    stray_starts: list[int] = field(default_factory=list)
    validation_loops: list[tuple[SourceFile, ast.For | ast.AsyncFor]] = field(default_factory=list)


def trace_facts(program: Program) -> TimingFacts:
    facts = TimingFacts()
    entry = program.entry
    if entry is None or entry.tree is None:
        return facts
    events = Tracer(program).run(entry)
    facts.events = events
    spans = _loop_spans(events)

    stop_indexes = [i for i, ev in enumerate(events) if ev.kind == "stop"]
    loop: Span | None = None
    for idx in reversed(stop_indexes):
        containing = [s for s in spans if s.contains(idx)]
        if containing:
            loop = max(containing, key=lambda s: s.enter)  # innermost
            break
    if loop is None:
        with_both = [s for s in spans
                     if any(events[i].kind == "backward" for i in range(s.enter, s.exit))
                     and any(events[i].kind == "clock" for i in range(s.enter, s.exit))]
        outermost = [s for s in with_both if not any(o is not s and o.contains(s.enter) for o in with_both)]
        loop = outermost[-1] if outermost else None
    facts.loop = loop
    if loop is None:
        return facts

    inside = range(loop.enter + 1, loop.exit)
    facts.stops = [i for i in inside if events[i].kind == "stop"]
    facts.val_loader_in_loop = any(events[i].kind == "val_loader" for i in inside)
    for stop in facts.stops:
        restart = next((i for i in range(stop + 1, loop.exit) if events[i].kind == "start"), None)
        facts.regions.append((stop, restart if restart is not None else loop.exit))
    facts.restarted = bool(facts.regions) and all(end < loop.exit for _, end in facts.regions)
    region_ends = {end for _, end in facts.regions}
    start_keys = {events[end].key for end in region_ends if end < loop.exit}
    facts.stray_starts = [i for i in inside if events[i].kind == "start" and events[i].key in start_keys
                          and i not in region_ends]
    # What each loop inside a paused stretch (the validation) iterates.
    for stop, end in facts.regions:
        for i in range(stop + 1, end):
            node = events[i].node
            if events[i].kind == "loop_enter" and isinstance(node, (ast.For, ast.AsyncFor)):
                facts.validation_loops.append((events[i].sf, node))
    if facts.stops:
        facts.sync_before_stop = all(preceded_by_sync(events, i) for i in facts.stops)
        starts = [end for _, end in facts.regions if end < loop.exit]
        facts.sync_before_start = bool(starts) and all(preceded_by_sync(events, i) for i in starts)
    for start, end in facts.regions:
        region = events[start + 1:end]
        if any(ev.kind == "val_loader" for ev in region):
            facts.val_loader_paused = True
        if not any(ev.kind in {"val_loader", "reduce"} for ev in region):
            facts.pauses_without_validation.append(start)
    facts.averaged_reduce = _averaged_reduce(events[loop.enter + 1:loop.exit])

    # Warm-up: the last loop before the timed loop that runs backward passes.
    before = [s for s in spans if s.exit < loop.enter and not s.contains(loop.enter)
              and any(events[i].kind == "backward" for i in range(s.enter, s.exit))]
    if before:
        last = max(before, key=lambda s: s.exit)
        outer = [s for s in before if s.contains(last.enter) or s is last]
        warm = min(outer, key=lambda s: s.enter)
        facts.warmup = warm
        facts.warmup_count = _loop_count(warm.node, warm.sf)
        facts.saved = any(ev.kind == "save" for ev in events[:warm.enter])
        restores = {(ev.sf.rel, getattr(ev.node, "lineno", 0), getattr(ev.node, "col_offset", 0))
                    for ev in events[warm.exit:loop.enter] if ev.kind == "restore"}
        facts.restores = len(restores)
        last_restore = max((i for i in range(warm.exit, loop.enter) if events[i].kind == "restore"), default=None)
        if last_restore is not None:
            facts.untimed_backward = next((events[i] for i in range(last_restore, loop.enter)
                                           if events[i].kind == "backward"), None)
    return facts


def _averaged_reduce(events: list[Event]) -> bool:
    """A value both divided (or averaged) and passed to dist.all_reduce/dist.reduce within these events."""
    divided = {ev.key for ev in events if ev.kind == "div"}
    return any(ev.kind == "reduce" and ev.key in divided for ev in events)


def preceded_by_sync(events: list[Event], index: int) -> bool:
    for i in range(index - 1, -1, -1):
        kind = events[i].kind
        if kind == "clock":
            continue
        return kind == "sync"
    return False


def _loop_count(node: ast.AST, sf: SourceFile) -> int | None:
    """How many times a loop runs when that is a constant (`range(warmup_steps)` with `warmup_steps = 30`)."""
    if not isinstance(node, (ast.For, ast.AsyncFor)):
        return None
    env = _module_constants(sf)
    fields = _class_constants(sf)
    it = node.iter
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" and not it.keywords:
        args = [fields.get(a.attr, MISSING) if isinstance(a, ast.Attribute) else const_eval(a, env) for a in it.args]
        if args and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            try:
                return len(range(*args))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None
        return None
    value = const_eval(it, env)
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(it, ast.Name):
        values = sf.assigns.get(it.id, [])
        if len(values) == 1 and isinstance(values[0], (ast.List, ast.Tuple, ast.Set)):
            return len(values[0].elts)
    return None


def _class_constants(sf: SourceFile) -> dict[str, object]:
    """Constant class fields of the file (`warmup_steps = 30` in Hyperparameters), unless two classes disagree."""
    fields: dict[str, object] = {}
    clashes: set[str] = set()
    assert sf.tree is not None
    for cls in ast.walk(sf.tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        env: dict[str, object] = {}
        for stmt in cls.body:
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
            value = stmt.value if isinstance(stmt, (ast.AnnAssign, ast.Assign)) else None
            if not isinstance(target, ast.Name) or value is None:
                continue
            val = const_eval(value, env)
            if val is MISSING:
                continue
            env[target.id] = val
            if target.id in fields and not same_value(fields[target.id], val):
                clashes.add(target.id)
            fields[target.id] = val
    for name in clashes:
        fields.pop(name, None)
    return fields


def _module_constants(sf: SourceFile) -> dict[str, object]:
    env: dict[str, object] = {}
    assert sf.tree is not None
    for stmt in sf.tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            val = const_eval(stmt.value, env)
            if val is not MISSING:
                env[stmt.targets[0].id] = val
            else:
                env.pop(stmt.targets[0].id, None)
    return env
