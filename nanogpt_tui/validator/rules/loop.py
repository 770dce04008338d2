"""Lexical checks on the timed loop: a fixed step count and no tampering with the clock."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from nanogpt_tui.validator.rules.model import Violation
from nanogpt_tui.validator.rules.names import CLOCKS, TIME_UNITS, WALL_CLOCKS
from nanogpt_tui.validator.rules.program import Program, SourceFile
from nanogpt_tui.validator.rules.pyast import callee_name, names_in, snippet, text_of
from nanogpt_tui.validator.rules.trace import Span, TimingFacts, clock_in


_TIME_WORDS = ("time", "elapsed", "deadline", "clock")
_SCHEDULE_WORDS = ("every", "freq", "interval")


def _identifier_reason(ident: str, clock_keys: set[str]) -> str | None:
    low = ident.lower()
    if ident in clock_keys or any(word in low for word in _TIME_WORDS):
        return "time"
    if "loss" in low and not any(word in low for word in _SCHEDULE_WORDS):
        return "loss"
    return None


class _Mentions:
    """Does an expression depend on the clock or on a loss value (following names and local helpers a little way)?"""

    def __init__(self, program: Program, sf: SourceFile, clock_keys: set[str]):
        self.program = program
        self.sf = sf
        self.clock_keys = clock_keys

    def reason(self, node: ast.AST, depth: int = 0, seen: set[str] | None = None) -> str | None:
        seen = set() if seen is None else seen
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                if self.sf.aliases.qualname(n.func) in CLOCKS:
                    return "time"
                name = callee_name(n)
                if depth < 3 and name and self.sf.aliases.qualname(n.func) is None and name not in seen:
                    seen.add(name)
                    for fn, fn_sf in self.program.functions.get(name, []):
                        sub = _Mentions(self.program, fn_sf, self.clock_keys)
                        for ret in ast.walk(fn):
                            if isinstance(ret, ast.Return) and ret.value is not None:
                                why = sub.reason(ret.value, depth + 1, seen)
                                if why:
                                    return why
            if isinstance(n, ast.Name):
                why = _identifier_reason(n.id, self.clock_keys)
                if why:
                    return why
                if depth < 3 and n.id not in seen:
                    seen.add(n.id)
                    for value in self.sf.assigns.get(n.id, []):
                        why = self.reason(value, depth + 1, seen)
                        if why:
                            return why
            elif isinstance(n, ast.Attribute):
                why = _identifier_reason(n.attr, self.clock_keys) or (
                    "time" if text_of(n) in self.clock_keys else None)
                if why:
                    return why
        return None


def _walk_loop_body(stmts: list[ast.stmt], tests: tuple[ast.expr, ...], in_nested_loop: bool
                    ) -> Iterator[tuple[ast.stmt, tuple[ast.expr, ...], bool]]:
    """Statements inside a loop with the `if` tests that guard them (nested defs are skipped)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt, tests, in_nested_loop
        if isinstance(stmt, ast.If):
            yield from _walk_loop_body(stmt.body, tests + (stmt.test,), in_nested_loop)
            yield from _walk_loop_body(stmt.orelse, tests + (stmt.test,), in_nested_loop)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            extra = (stmt.test,) if isinstance(stmt, ast.While) else ()
            yield from _walk_loop_body(stmt.body + stmt.orelse, tests + extra, True)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            yield from _walk_loop_body(stmt.body, tests, in_nested_loop)
        elif isinstance(stmt, (ast.Try, ast.TryStar)):
            inner = stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse + stmt.finalbody
            yield from _walk_loop_body(inner, tests, in_nested_loop)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                yield from _walk_loop_body(case.body, tests, in_nested_loop)


_EXIT_CALLS = frozenset({"sys.exit", "os._exit", "exit", "quit"})


def fixed_steps_violations(program: Program, loop: Span, clock_keys: set[str]) -> list[Violation]:
    node, sf = loop.node, loop.sf
    mentions = _Mentions(program, sf, clock_keys)
    out: list[Violation] = []

    def add(line: int, message: str) -> None:
        out.append(Violation("fixed-steps", sf.rel, line, message))

    bound: ast.expr = node.iter if isinstance(node, (ast.For, ast.AsyncFor)) else node.test
    if isinstance(node, ast.While):
        why = mentions.reason(node.test)
        if why:
            add(node.lineno, f"The training loop condition `{snippet(node.test)}` depends on {why}; "
                             "run a fixed number of steps (e.g. `for step in range(train_steps + 1)`).")
    else:
        qual = sf.aliases.qualname(bound.func) if isinstance(bound, ast.Call) else None
        if qual == "itertools.count" or (isinstance(bound, ast.Call) and isinstance(bound.func, ast.Name)
                                         and bound.func.id == "count" and qual in {None, "itertools.count"}):
            add(node.lineno, f"The training loop iterates over `{snippet(bound)}`, which never ends by itself; "
                             "run a fixed number of steps (e.g. `for step in range(train_steps + 1)`).")
        else:
            why = mentions.reason(bound)
            if why:
                add(node.lineno, f"The training loop bound `{snippet(bound)}` depends on {why}; "
                                 "fix the number of steps before training starts.")

    loop_vars = names_in(node.target) if isinstance(node, (ast.For, ast.AsyncFor)) else set()
    bound_names = {text_of(n) for n in ast.walk(bound) if isinstance(n, (ast.Name, ast.Attribute))} - loop_vars
    bound_names.discard("range")

    for stmt, tests, nested in _walk_loop_body(node.body, (), False):
        # The step budget must not move once the loop runs.
        if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, (ast.Name, ast.Attribute)) and text_of(t) in bound_names:
                        counting = (isinstance(node, ast.While) and isinstance(stmt, ast.AugAssign)
                                    and isinstance(stmt.value, ast.Constant))
                        if not counting:
                            add(stmt.lineno, f"`{text_of(t)}`, which bounds the training loop, is reassigned "
                                             "inside it; keep the number of steps fixed.")
        exit_kind = None
        if isinstance(stmt, (ast.Break, ast.Continue)) and not nested:
            exit_kind = "break" if isinstance(stmt, ast.Break) else "continue"
        elif isinstance(stmt, ast.Return):
            exit_kind = "return"
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            qual = sf.aliases.qualname(stmt.value.func)
            if qual in _EXIT_CALLS or (isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in {"exit",
                                                                                                         "quit"}):
                exit_kind = "exit"
        if exit_kind is None:
            continue
        for test in tests:
            why = mentions.reason(test)
            if why:
                add(stmt.lineno, f"A `{exit_kind}` in the training loop depends on {why} (`{snippet(test)}`); "
                                 "stop only after the fixed number of steps.")
                break
    return out


def _scope_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt
        for field_name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field_name, None)
            if isinstance(inner, list):
                yield from _scope_statements(inner)
        if isinstance(stmt, (ast.Try, ast.TryStar)):
            for handler in stmt.handlers:
                yield from _scope_statements(handler.body)
        if isinstance(stmt, ast.Match):
            for case in stmt.cases:
                yield from _scope_statements(case.body)


def _enclosing_scope(sf: SourceFile, target: ast.AST) -> list[ast.stmt]:
    """The body of the innermost function holding `target`, or the module body."""
    fn = sf.owner(target)
    if fn is not None:
        return fn.body
    assert sf.tree is not None
    return sf.tree.body


def _contains(body: list[ast.stmt], node: ast.AST) -> bool:
    return any(inner is node for stmt in body for inner in ast.walk(stmt))


def clock_tampering_violations(program: Program, facts: TimingFacts) -> list[Violation]:
    """Assignments that move the accumulated time or the start time other than by the anchor's method."""
    assert facts.loop is not None
    events = facts.events
    acc_keys = {events[i].key for i in facts.stops}
    start_keys = {events[end].key for _, end in facts.regions if end < facts.loop.exit}
    loop_node = facts.loop.node
    out: list[Violation] = []
    for key in sorted(acc_keys | start_keys):
        is_attr = "." in key
        statements: list[tuple[ast.stmt, SourceFile]] = []
        for sf in program.parsed:
            assert sf.tree is not None
            if is_attr:
                statements += [(s, sf) for s in ast.walk(sf.tree) if isinstance(s, ast.stmt)]
        if not is_attr:
            clock_events = [events[i] for i in facts.stops if events[i].key == key] + \
                           [events[end] for _, end in facts.regions
                            if end < facts.loop.exit and events[end].key == key]
            bodies: dict[int, tuple[list[ast.stmt], SourceFile]] = {}
            for ev in clock_events:
                assert ev.sf.tree is not None
                body = _enclosing_scope(ev.sf, ev.node)
                bodies[id(body)] = (body, ev.sf)
                # A helper that declares the name global shares it with the module and other such helpers.
                sharing = ev.sf.globals_of(key)
                if sharing:
                    bodies[id(ev.sf.tree.body)] = (ev.sf.tree.body, ev.sf)
                    for fn in sharing:
                        bodies[id(fn.body)] = (fn.body, ev.sf)
            for body, body_sf in bodies.values():
                statements += [(s, body_sf) for s in _scope_statements(body)]
        seen: set[int] = set()
        for stmt, sf in statements:
            if id(stmt) in seen or not isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                continue
            seen.add(id(stmt))
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if not any(text_of(t) == key for t in targets):
                continue
            message = _tamper_message(stmt, key, key in acc_keys, loop_node, sf)
            if message:
                out.append(Violation("timing-clock", sf.rel, stmt.lineno, message))
    # The accumulation itself may only convert units.
    for i in facts.stops:
        ev = events[i]
        stmt = ev.node
        value = stmt.value if isinstance(stmt, (ast.AugAssign, ast.Assign)) else None
        if value is None:
            continue
        if ev.clock not in WALL_CLOCKS:
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The training time is accumulated from `{ev.clock}`, which is not wall-clock time; "
                                 "measure real elapsed time as the anchor does (time.perf_counter)."))
        factors = [n.value for n in ast.walk(value) if isinstance(n, ast.Constant)
                   and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
        odd = [f for f in factors if f not in TIME_UNITS]
        if odd:
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The time accumulation `{snippet(stmt)}` scales the elapsed time by {odd[0]!r}; "
                                 "add the real elapsed time (unit conversions such as 1000 only)."))
        if not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub) for n in ast.walk(value)):
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The time accumulation `{snippet(stmt)}` does not add an elapsed interval "
                                 "(clock now minus start); accumulate real elapsed time."))
    return out


def _tamper_message(stmt: ast.stmt, key: str, is_acc: bool, loop_node: ast.AST, sf: SourceFile) -> str | None:
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) else None
    if value is None:
        return None
    is_clock = clock_in(value, sf) != ""
    if is_acc:
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add) and is_clock:
            return None  # the accumulation itself, checked separately
        if isinstance(stmt, ast.Assign) and isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) \
                and is_clock and key in names_in(value):
            return None
        if isinstance(value, ast.Constant) and value.value in (0, 0.0) and not _contains([loop_node], stmt):  # type: ignore[list-item]
            return None
        return (f"`{snippet(stmt)}` changes the accumulated training time `{key}` other than by adding elapsed "
                "clock time; keep the anchor's timing method.")
    if isinstance(stmt, ast.AugAssign):
        return (f"`{snippet(stmt)}` shifts the clock start `{key}`; restart the clock only with a fresh "
                "clock reading.")
    if isinstance(value, ast.Call) and sf.aliases.qualname(value.func) in CLOCKS:
        return None
    if isinstance(value, ast.Constant):
        return None
    return (f"`{snippet(stmt)}` sets the clock start `{key}` to something other than a fresh clock reading; "
            "restart the clock as the anchor does.")
