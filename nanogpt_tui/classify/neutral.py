"""The evidence of no change: docstrings, consistent renames, run labels and logging."""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from typing import Any

from nanogpt_tui.classify.syntax import _SKIP_FIELDS


# Assignments that name the run or its logs, not the training (`run_id = f"yarn/{uuid.uuid4()}"`).
RUN_LABEL = re.compile(r"(^|_)(run_?id|run_?name|uuid|tag|log|logs|log_?dir|log_?file|log_?path|logfile)$",
                       re.IGNORECASE)


LOG_CALLS = frozenset({"print", "print0", "log", "log0", "logging", "logger", "warn", "warnings", "write",
                       "info", "debug", "warning"})


@functools.lru_cache(maxsize=64)
def _identifiers(tree: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """Every identifier a tree uses (names, attributes, parameters, keywords, definitions) and those it binds."""
    used: set[str] = set()
    bound: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            used.add(n.id)
            if isinstance(n.ctx, ast.Store):
                bound.add(n.id)
        elif isinstance(n, ast.Attribute):
            used.add(n.attr)
            if isinstance(n.ctx, ast.Store):
                bound.add(n.attr)
        elif isinstance(n, ast.arg):
            used.add(n.arg)
            bound.add(n.arg)
        elif isinstance(n, ast.keyword) and n.arg:
            used.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            used.add(n.name)
            bound.add(n.name)
    return frozenset(used), frozenset(bound)


def _renamed_identifiers(a: Any, b: Any, out: list[tuple[str, str]]) -> bool:
    """Whether two subtrees differ only in identifiers (collected into `out` as (old, new) pairs)."""
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(_renamed_identifiers(x, y, out) for x, y in zip(a, b))
    if not (isinstance(a, ast.AST) and isinstance(b, ast.AST)):
        return a == b
    if type(a) is not type(b):
        return False
    ident = {ast.Name: "id", ast.Attribute: "attr", ast.arg: "arg", ast.keyword: "arg", ast.FunctionDef: "name",
             ast.AsyncFunctionDef: "name", ast.ClassDef: "name"}.get(type(a))
    for name, va in ast.iter_fields(a):
        if name in _SKIP_FIELDS:
            continue
        vb = getattr(b, name, None)
        if name == ident and va != vb:
            if not (isinstance(va, str) and isinstance(vb, str)):
                return False
            out.append((va, vb))
        elif not _renamed_identifiers(va, vb, out):
            return False
    return True


def _strip_docstrings(tree: ast.AST) -> None:
    """Drop docstrings and bare string statements: they do not run."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]
            if len(kept) != len(body):
                node.body = kept or [ast.Pass()]


# ------------------------------------------------------------------------------------------------ moved code

def statements_of(nodes: Any) -> tuple[str, ...]:
    """The statements some nodes hold, each as one line of text: simple statements whole, compound ones by their
    header (`if step % 2 == 0`, `def step(self, p)`); `self.` dropped, so code moved
    from a function into a method reads the same."""
    out: list[str] = []
    for node in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        if not isinstance(node, ast.AST):
            continue
        if not isinstance(node, ast.stmt):
            continue  # a changed expression inside a statement stays where it is: it cannot have moved
        for n in ast.walk(node):
            if isinstance(n, ast.ImportFrom):
                out.extend(f"from {n.module} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                           for a in n.names)
            elif isinstance(n, ast.stmt):
                out.append(_statement_text(n))
    return tuple(out)


def _statement_text(node: ast.AST) -> str:
    header: ast.AST | str = node
    if isinstance(node, (ast.If, ast.While)):
        header = f"{type(node).__name__.lower()} {_unparse(node.test)}"
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        header = f"for {_unparse(node.target)} in {_unparse(node.iter)}"
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        header = "with " + ", ".join(_unparse(i) for i in node.items)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        # Parameter names only: annotations do not run (`x: Tensor` in one file, `x: torch.Tensor` in another).
        params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
        header = f"def {node.name}({', '.join(params)})"
    elif isinstance(node, ast.ClassDef):
        header = f"class {node.name}"
    elif isinstance(node, ast.Try):
        header = "try"
    text = header if isinstance(header, str) else _unparse(header)
    return " ".join(text.replace("self.", "").split())


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - an odd node: its type stands in for its text
        return type(node).__name__


MOVABLE_CHANGES = frozenset({"structure", "added", "removed", "file-added", "file-removed"})


def discount_moved(evidence: list[Any], kept: Counter[str] | None = None) -> None:
    """Weigh each changed place by what it really changed: statements it keeps (the same statements on both
    sides) and statements moved to or from another place of the change (code moved into a new file, a helper, a
    class) do not count. A place left with nothing becomes neutral: moved code, no change."""
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    own: list[tuple[Any, Counter[str], Counter[str]]] = []
    for e in evidence:
        if e.change not in MOVABLE_CHANGES:
            continue
        old, new = Counter(e.statements[0]), Counter(e.statements[1])
        gone, came = old - new, new - old
        if e.kind == "neutral":
            # A neutral import is still a statement that left one place (`from m import a, b` rewritten as
            # `from m import a, b, c` is two places): the other place's same lines are no new import.
            if all(t.startswith(("import ", "from ")) for t in [*gone, *came]):
                removed.update(gone)
                added.update(came)
            continue
        removed.update(gone)
        added.update(came)
        own.append((e, gone, came))
    removed_shapes = Counter(_shape(t) for t in removed.elements())
    # The new version's statements that no changed place adds: code it keeps as it was.
    kept_shapes = Counter(_shape(t) for t in ((kept or Counter()) - added).elements())
    added_shapes = Counter(_shape(t) for t in added.elements())
    for e, gone, came in own:
        size = max(len(e.statements[0]), len(e.statements[1]))
        if size == 0 or not (gone or came):
            continue  # nothing here to have moved (the same statements reordered, arguments swapped)
        # The same statement elsewhere in the change, or one of the same shape (names changed: `grad` -> `g`).
        others_removed, others_added = removed - gone, added - came
        left_in, left_out = came - others_removed, gone - others_added
        own_removed, own_added = Counter(map(_shape, gone.elements())), Counter(map(_shape, came.elements()))
        left_in = Counter(_shape(t) for t in left_in.elements()) - (removed_shapes - own_removed)
        left_out = Counter(_shape(t) for t in left_out.elements()) - (added_shapes - own_added)
        judged_out = left_out  # what the place is judged by when part of it moved (see below)
        if kept:
            # Dropped code the new version still holds elsewhere, unchanged (two classes merged into one, a helper
            # inlined where its copy already was): a duplicate removed, not work undone; it weighs nothing, but the
            # place's kind is still that of what it dropped.
            left_out = left_out - kept_shapes
        real = max(sum(left_in.values()), sum(left_out.values()))
        # A definition's header (`def f(x)`, `class Muon`) is no work of its own once its body has moved or is kept.
        if not any(not t.startswith(("def ", "class ")) for t in [*left_in, *left_out]):
            real = 0
        if real >= size:
            continue
        if real <= 0:
            e.kind, e.why, e.weight = "neutral", f"moved code (was {e.kind}: {e.why})", 0.0
            continue
        e.weight *= real / size
        _judge_what_is_left(e, gone, came, judged_out, left_in)
    # An import that only brings in what moved (`from triton_kernels import norm` for a `norm` moved there) is part
    # of the move.
    moved = {m.group(1) for e in evidence if e.why.startswith("moved code") for t in e.statements[0] + e.statements[1]
             for m in [re.match(r"(?:def|class) (\w+)", t)] if m}
    for e, gone, came in own:
        lines = list((came - (removed - gone)).elements()) + list((gone - (added - came)).elements())
        if e.kind != "neutral" and lines and all(re.fullmatch(r"from \S+ import (\w+)", t)
                                                 and t.rsplit(" ", 1)[1] in moved for t in lines):
            e.kind, e.why, e.weight = "neutral", f"imports moved code (was {e.kind}: {e.why})", 0.0


def _judge_what_is_left(e: Any, gone: Counter[str], came: Counter[str], left_out: Counter[str],
                        left_in: Counter[str]) -> None:
    """A place partly made of moved code takes the kind of what it really changed: a rank's share of an optimizer's
    update moved under `if i % world_size == rank` beside a new all_reduce is the communication, not the update's
    maths, which the moved statements carried. The place is judged again without its moved statements (`left_out`
    and `left_in` hold the shapes of those left), keeping its discounted weight."""
    if e.rejudge is None or not (e.kind == "algorithmic" and e.why.startswith("computation changed")):
        return  # only a computation can have been carried in by the statements that moved with it
    def moved(side: Counter[str], left: Counter[str]) -> Counter[str]:
        left = Counter(left)
        out: Counter[str] = Counter()
        for text in side.elements():
            if left[_shape(text)] > 0:
                left[_shape(text)] -= 1
            else:
                out[text] += 1
        return out
    found = [f for f in e.rejudge(moved(gone, left_out), moved(came, left_in)) if f.weight > 0]
    weights: dict[str, float] = {}
    for f in found:
        if f.kind != "neutral":
            weights[f.kind] = weights.get(f.kind, 0.0) + f.weighed
    if not weights:
        return
    kind = max(weights, key=lambda k: (weights[k], k))
    if kind == e.kind:
        return  # still the model's or optimizer's code: the computation stays (re-implemented or not, see below)
    best = max((f for f in found if f.kind == kind), key=lambda f: f.weighed)
    e.why = f"{best.why} (the rest moved; was {e.kind}: {e.why})"
    e.kind, e.nature = kind, best.nature


_IDENTIFIER = re.compile(r"(?<![.\w])([A-Za-z_]\w*)(?!\w|\s*\()")
_KEYWORDS = frozenset({"for", "in", "if", "else", "elif", "while", "def", "class", "return", "and", "or", "not", "is",
                       "None", "True", "False", "with", "as", "lambda", "yield", "try", "del", "assert", "raise"})


def _shape(text: str) -> str:
    """A statement with its plain names blanked (`m = exp_avg.lerp_(grad, 1 - b)` -> `_ = _.lerp_(_, 1 - _)`):
    attributes and called names stay, so only code of the same form matches. Short statements keep their text
    (`_ = _` would match anything)."""
    shape = _IDENTIFIER.sub(lambda m: m.group(1) if m.group(1) in _KEYWORDS else "_", text)
    return shape if len(shape) >= 12 and ("(" in shape or "." in shape) else text
