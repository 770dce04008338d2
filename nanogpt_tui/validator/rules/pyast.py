"""Reading Python expressions: which library object a name stands for, constant values, source text."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass


# -----------------------------------------------------------------------------
# Name resolution: which library object an expression names


@dataclass
class Aliases:
    """Local names bound to modules or library objects (`import torch._dynamo as dynamo`, `cfg = torch._inductor.config`)."""

    names: dict[str, str]

    @classmethod
    def of(cls, tree: ast.Module) -> Aliases:
        names: dict[str, str] = {}
        assignments: list[ast.Assign] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    assignments.append(node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names.setdefault(alias.asname, alias.name)
                    else:
                        top = alias.name.split(".")[0]
                        names.setdefault(top, top)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        names.setdefault(alias.asname or alias.name, f"{node.module}.{alias.name}")
        aliases = cls(names)
        # Plain assignments of library objects (`compile_fn = torch.compile`), twice for chains.
        for _ in range(2):
            for node in assignments:
                if isinstance(node.targets[0], ast.Name):
                    target = node.targets[0].id
                    if target in aliases.names:
                        continue
                    qual = aliases.qualname(node.value)
                    if qual and qual.split(".")[0] in {"torch", "time", "functools", "os", "subprocess", "itertools"}:
                        aliases.names[target] = qual
        return aliases

    def qualname(self, node: ast.AST) -> str | None:
        """'torch._inductor.config.max_autotune' for `ic.max_autotune` after `import torch._inductor.config as ic`."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None


def callee_name(node: ast.Call) -> str | None:
    """The called name: `compile` for `torch.compile(...)` and `model.compile(...)`, None for a computed callee."""
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def text_of(node: ast.AST) -> str:
    """The expression's source, normalised by the unparser."""
    return ast.unparse(node)


def snippet(node: ast.AST, limit: int = 80) -> str:
    """The expression's source on one line, cut to `limit` characters (for messages)."""
    text = " ".join(text_of(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -----------------------------------------------------------------------------
# Constant evaluation (literals and arithmetic on them, names resolved through a small environment)

_BINOPS: dict[type, Callable[[object, object], object]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}

# What `const_eval` returns for an expression that is not constant (None is a constant).
MISSING = object()


def const_eval(node: ast.AST, env: dict[str, object] | None = None) -> object:
    """The value of a constant expression, or MISSING. Handles `4 * 64 * 1024 * 8`, strings, tuples, env names."""
    env = env or {}
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        val = const_eval(node.operand, env)
        if val is MISSING:
            return MISSING
        try:
            if isinstance(node.op, ast.Not):
                return not val
            return -val if isinstance(node.op, ast.USub) else +val  # type: ignore[operator]
        except TypeError:
            return MISSING
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = const_eval(node.left, env), const_eval(node.right, env)
        if left is MISSING or right is MISSING:
            return MISSING
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
            return MISSING
        if isinstance(node.op, ast.Mult) and (isinstance(left, str) or isinstance(right, str)):
            if max(len(left) if isinstance(left, str) else 0, len(right) if isinstance(right, str) else 0) > 10_000:
                return MISSING
        try:
            return _BINOPS[type(node.op)](left, right)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return MISSING
    if isinstance(node, (ast.Tuple, ast.List)):
        vals = [const_eval(elt, env) for elt in node.elts]
        if any(v is MISSING for v in vals):
            return MISSING
        return tuple(vals) if isinstance(node, ast.Tuple) else list(vals)
    return MISSING


def value_repr(node: ast.AST) -> str:
    """A normal form for comparing values: the literal's repr when constant, else the expression's source."""
    val = const_eval(node)
    if val is not MISSING:
        return repr(val)
    return text_of(node)


def same_value(a: object, b: object) -> bool:
    """Whether two literals are equal, with True never equal to 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - comparing arbitrary literals; unequal when it cannot be decided
        return False


# -----------------------------------------------------------------------------
# Names and assignments in a tree


def assignments_by_name(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """Every value assigned to each plain name anywhere in the tree (scopes merged)."""
    out: dict[str, list[ast.expr]] = {}

    def add(target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            out.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    add(t, v)
            else:
                for t in target.elts:
                    add(t, value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            add(node.target, node.value)
        elif isinstance(node, ast.NamedExpr):
            add(node.target, node.value)
    return out


def names_in(node: ast.AST) -> set[str]:
    """The source of every name and attribute in an expression (`step`, `args.num_iterations`, `args`)."""
    return {text_of(n) for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}
