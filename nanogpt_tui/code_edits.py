"""Edits to a record's train_gpt.py in the one language plans and our own records share: `set` changes defaults of
the `Hyperparameters` dataclass (located through the AST), `replace` substitutes exact text that must occur once."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from nanogpt_tui.record_grammar import parse_newer


class EditError(Exception):
    """An edit cannot be applied to this code; the message says which and why."""


def python_literal(value: Any) -> str:
    """The Python source of a plan value."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float, str)):
        return repr(value)
    raise EditError(f"{value!r} is not a number, boolean or string, so it cannot be written as a default.")


def _hyperparameter_fields(tree: ast.Module, class_name: str) -> dict[str, ast.expr]:
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name]
    if len(classes) != 1:
        raise EditError(f"train_gpt.py defines {len(classes) or 'no'} class {class_name}, so the fields to set "
                        "cannot be located; use a `replace` edit instead.")
    fields: dict[str, ast.expr] = {}
    for stmt in classes[0].body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, value = stmt.target.id, stmt.value
        else:
            continue
        if name in fields:
            raise EditError(f"{class_name}.{name} is assigned twice, so which default to change is ambiguous.")
        fields[name] = value
    return fields


def set_hyperparameters(source: str, values: Mapping[str, Any], *,
                        class_name: str = "Hyperparameters") -> tuple[str, list[str]]:
    """Replace the default of each named field of the `Hyperparameters` class with a literal.

    The field's value expression is found through the AST and only its text is replaced, so comments and
    the rest of the line stay as they were. Returns the new source and one line per change.
    """
    tree = parse_newer(source, "train_gpt.py")
    fields = _hyperparameter_fields(tree, class_name)
    raw = source.encode("utf-8")
    line_starts = [0]
    for line in raw.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    edits = []
    for name, value in values.items():
        node = fields.get(name)
        if node is None:
            known = ", ".join(sorted(fields)) or "none"
            raise EditError(f"{class_name} has no field {name!r} (its fields: {known}).")
        # AST columns are UTF-8 byte offsets.
        start = line_starts[node.lineno - 1] + node.col_offset
        end = line_starts[node.end_lineno - 1] + node.end_col_offset
        old_text = raw[start:end].decode("utf-8")
        new_text = python_literal(value)
        edits.append((start, end, new_text, f"{name}: {old_text} -> {new_text} (line {node.lineno})"))
    changes = []
    for start, end, new_text, description in sorted(edits, reverse=True):
        raw = raw[:start] + new_text.encode("utf-8") + raw[end:]
        changes.append(description)
    new_source = raw.decode("utf-8")
    # Check the result: it parses and every field now holds exactly the value asked for.
    new_fields = _hyperparameter_fields(ast.parse(new_source), class_name)
    for name, value in values.items():
        got = ast.literal_eval(new_fields[name])
        if got != value or type(got) is not type(value):
            raise EditError(f"setting {class_name}.{name} did not take ({got!r} instead of {value!r}).")
    return new_source, list(reversed(changes))


def replace_exactly_once(source: str, old: str, new: str) -> str:
    """Substitute `old` by `new`, which must occur exactly once."""
    count = source.count(old)
    if count != 1:
        first = old.strip().splitlines()[0] if old.strip() else old
        raise EditError(f"the text to replace (starting {first.strip()[:60]!r}) occurs {count} times in "
                        "train_gpt.py instead of exactly once.")
    return source.replace(old, new, 1)


def apply_edits(source: str, replace: Iterable[tuple[str, str]] = (), values: Mapping[str, Any] | None = None) \
        -> tuple[str, list[str]]:
    """The edited code: the substitutions first, then the Hyperparameters values; refused unless it parses.
    Returns the new source and one line per change."""
    changes = []
    for old, new in replace:
        source = replace_exactly_once(source, old, new)
        changes.append(f"replaced {len(old.splitlines())} line(s) with {len(new.splitlines())}")
    if values:
        source, more = set_hyperparameters(source, values)
        changes.extend(more)
    try:
        parse_newer(source, "train_gpt.py")
    except SyntaxError as err:
        raise EditError(f"the edited train_gpt.py does not parse (line {err.lineno}: {err.msg}).") from None
    return source, changes
