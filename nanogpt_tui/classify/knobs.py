"""The evidence of hyperparameter tuning: literals and their values, knobs, schedule scopes, state set up."""

from __future__ import annotations

import ast
import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from nanogpt_tui.classify.syntax import dotted, is_literal


# Scopes whose arithmetic is a schedule or a set of knobs: shape changes there are tuning.
SCHEDULE_SCOPE = re.compile(r"(^|_)(lr|lrs|schedule|sched|warmup|cooldown|decay|momentum|window|ws|frac)(_|$)|"
                            r"schedule|warmup|cooldown", re.IGNORECASE)


# Classes whose fields are knobs: anchored, so `AttnArgs` (a bundle of tensors) is not one.
KNOB_CLASS = re.compile(r"^(\w*hyperparam(eter)?s?|h?params|args|\w*settings|\w*config)$", re.IGNORECASE)


# Calls a schedule's arithmetic may make without becoming something else.
ARITHMETIC_CALLS = frozenset({"min", "max", "abs", "round", "int", "float", "math", "pow", "sum", "len"})


ARITHMETIC_NODES = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Name, ast.Constant,
                    ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.keyword, ast.Call, ast.Return,
                    ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.Expr, ast.operator, ast.unaryop,
                    ast.boolop, ast.cmpop, ast.expr_context, ast.Slice, ast.Pass)


@functools.lru_cache(maxsize=64)
def _args_with_literal_defaults(tree: ast.AST) -> tuple[ast.arg, ...]:
    """The parameters whose default is a literal (`head_dim=128`), in every signature of a tree."""
    out: list[ast.arg] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.arguments):
            positional = [*n.posonlyargs, *n.args]
            pairs = list(zip(positional[len(positional) - len(n.defaults):], n.defaults))
            pairs += [(a, d) for a, d in zip(n.kwonlyargs, n.kw_defaults) if d is not None]
            out.extend(a for a, d in pairs if is_literal(d))
    return tuple(out)


_STATE_VALUES = (0, None, False, "", -1)


def _is_state_init(node: ast.AST) -> bool:
    """`idx = 0`, `futures: list = []`, `self.thread = None`: state set up, not a knob."""
    if not _assigns_literal(node):
        return False
    value = node.value  # type: ignore[attr-defined]
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)) and not value.elts:
        return True
    if isinstance(value, ast.Dict) and not value.keys:
        return True
    v = literal_value(value)
    return any(type(v) is type(s) and v == s for s in _STATE_VALUES) or v == 0.0 and isinstance(v, float)


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}


def literal_value(node: ast.AST) -> Any:
    """The value of a literal expression, or a marker object when it cannot be worked out cheaply."""
    try:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            v = literal_value(node.operand)
            return {ast.USub: lambda x: -x, ast.UAdd: lambda x: +x, ast.Not: lambda x: not x,
                    ast.Invert: lambda x: ~x}[type(node.op)](v)
        if isinstance(node, ast.BinOp):
            a, b = literal_value(node.left), literal_value(node.right)
            if isinstance(node.op, ast.Pow):
                if isinstance(b, (int, float)) and abs(b) <= 64 and isinstance(a, (int, float)) and abs(a) < 1e6:
                    return a ** b
                return _Opaque(ast.dump(node))
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.Tuple):
            return tuple(literal_value(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [literal_value(e) for e in node.elts]
    except Exception:  # noqa: BLE001 - a literal we cannot evaluate (1/0, "a" - 1) is compared by its text
        pass
    return _Opaque(ast.dump(node))


@dataclass(frozen=True)
class _Opaque:
    text: str


def _same_literal(a: ast.AST, b: ast.AST) -> bool:
    va, vb = literal_value(a), literal_value(b)
    if isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb):
        return True
    return type(va) is type(vb) and va == vb if not isinstance(va, (int, float)) or isinstance(va, bool) \
        else (not isinstance(vb, bool) and isinstance(vb, (int, float)) and va == vb)


def _assigns_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        return is_literal(node.value) and all(isinstance(t, (ast.Name, ast.Attribute)) for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and is_literal(node.value) and isinstance(node.target, (ast.Name, ast.Attribute))
    return False


def _literal_vs_reference(a: ast.AST, b: ast.AST) -> bool:
    def ref(n: ast.AST) -> bool:
        return isinstance(n, (ast.Name, ast.Attribute)) and dotted(n) is not None
    return (is_literal(a) and ref(b)) or (ref(a) and is_literal(b))


def _is_arithmetic(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if not isinstance(n, ARITHMETIC_NODES):
            return False
        if isinstance(n, ast.Call):
            name = dotted(n.func) or ""
            if name.split(".")[0] not in ARITHMETIC_CALLS:
                return False
    return True


_KNOB_TARGET = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?::[^=]+)?=(?!=)")


def attribute_new_knobs(evidence: list[Any]) -> None:
    """A knob added (or removed) together with the code that reads it is part of that code: the coefficients of a
    new iteration, the size of a new embedding table, the flag of a new kernel are not a retuned value. It takes
    the kind of the heaviest changed place that reads it (on the same side of the change), with why; a knob no
    changed code reads stays tuning (a new setting of code that was already there)."""
    counted = ("hyperparameter", "algorithmic", "systems")
    for knob in evidence:
        if knob.kind != "hyperparameter" or not knob.why.startswith("a knob "):
            continue
        side = 1 if knob.change in ("added", "file-added") else 0
        names = {m.group(1).split(".")[-1] for text in knob.statements[side] if (m := _KNOB_TARGET.match(text))}
        if not names:
            continue
        pattern = re.compile(r"(?<![\w])(" + "|".join(map(re.escape, sorted(names))) + r")(?![\w])")
        weights: dict[str, float] = {}
        where: dict[str, Any] = {}
        for e in evidence:
            if e is knob or e.kind not in counted or e.why.startswith("a knob ") or e.change == "literal":
                continue
            # A changed statement that reads it, or a changed expression (`MLP(dim)` -> `None if layer_idx in
            # SKIPPED else MLP(dim)`: no statement of its own, its text is what changed).
            texts = e.statements[side] or ((e.after if side else e.before) or "",)
            if any(pattern.search(text) for text in texts):
                weights[e.kind] = weights.get(e.kind, 0.0) + e.weighed
                if e.kind not in where or e.weighed > where[e.kind].weighed:
                    where[e.kind] = e
        if not weights:
            continue
        kind = max(weights, key=lambda k: (weights[k], k))
        if kind == knob.kind:
            continue
        reader = where[kind]
        knob.kind = kind
        knob.why = f"{knob.why}, read by the {kind} code it comes with ({reader.file}:{reader.line} {reader.scope})"
