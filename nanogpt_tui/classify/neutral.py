"""The evidence of no change: docstrings, consistent renames, run labels and logging."""

from __future__ import annotations

import ast
import functools
import re
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
