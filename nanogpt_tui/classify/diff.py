"""Diffing two versions of a record: Python side by side by AST (each changed place judged), scripts line by line."""

from __future__ import annotations

import ast
import difflib
import functools
import re
from collections import Counter
from typing import Any

from nanogpt_tui.classify.knobs import _same_literal
from nanogpt_tui.classify.model import _clip, Evidence, HYPERPARAMETER, NEUTRAL, SYSTEMS
from nanogpt_tui.classify.neutral import _shape, _strip_docstrings, statements_of
from nanogpt_tui.record_grammar import parse_newer
from nanogpt_tui.classify.places import PlaceJudge, _Scope
from nanogpt_tui.classify.syntax import dotted, is_literal, _Shapes, _SKIP_FIELDS


@functools.lru_cache(maxsize=64)
def _parse(name: str, text: str) -> ast.Module:
    """The file's AST without docstrings; cached (the same parent is compared with many children). Callers
    must not change the tree."""
    tree = parse_newer(text, name)
    _strip_docstrings(tree)
    return tree


def _coarse_key(node: ast.AST, shapes: _Shapes) -> tuple:
    """What a statement is, ignoring its body: the key that pairs a changed statement with its old self."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return ("def", node.name)
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return ("for", shapes.of(node.target))
    if isinstance(node, ast.While):
        return ("while",)
    if isinstance(node, ast.If):
        return ("if", shapes.of(node.test))
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return ("with",)
    if isinstance(node, ast.Try):
        return ("try",)
    if isinstance(node, ast.Assign):
        return ("assign", shapes.of(node.targets))
    if isinstance(node, ast.AnnAssign):
        return ("annassign", shapes.of(node.target))
    if isinstance(node, ast.AugAssign):
        return ("augassign", shapes.of(node.target))
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return ("call", dotted(node.value.func) or type(node.value.func).__name__)
    if isinstance(node, ast.keyword):
        return ("keyword", node.arg)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return ("import", shapes.of(node))
    return (type(node).__name__,)


def _fine_key(node: ast.AST, shapes: _Shapes) -> tuple:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return ("def", node.name)
    if isinstance(node, ast.keyword):
        return ("keyword", node.arg, shapes.of(node.value))
    return ("shape", shapes.of(node))


class _PythonDiff(PlaceJudge):
    """Walks two ASTs side by side and records each changed place with its kind."""

    # ---- walking

    def diff_module(self) -> None:
        self.diff_list(self.old_tree.body, self.new_tree.body, [], [], statements=True)

    def diff_node(self, a: Any, b: Any, scopes: list[_Scope], ancestors: list[ast.AST]) -> None:
        if self.shapes.exact(a) == self.shapes.exact(b):
            return
        if is_literal(a) and is_literal(b):
            if not _same_literal(a, b):
                self.literal_change(a, b, scopes, ancestors)
            return
        if type(a) is not type(b):
            self.structural_change("structure", [a], [b], scopes, ancestors)
            return
        if isinstance(a, ast.expr):
            # An expression whose parts changed in more than one place is one new expression, not a list of
            # fragments: `w * 1.0 + (1 - w) * 0.1` -> `max(w, 0.05) ** 2`.
            differing = [k for k, v in ast.iter_fields(a)
                         if k not in _SKIP_FIELDS and self.shapes.of(v) != self.shapes.of(getattr(b, k, None))]
            if len(differing) > 1:
                self.structural_change("structure", [a], [b], scopes, ancestors)
                return
        inner_scopes = scopes
        if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner_scopes = [*scopes, _Scope(b.name, b)]
        chain = [*ancestors, b]
        shallow: list[str] = []
        for name, va in ast.iter_fields(a):
            if name in _SKIP_FIELDS:
                continue
            vb = getattr(b, name, None)
            if name in ("annotation", "returns"):
                # Type annotations do not run (`world_size` -> `world_size: int`).
                if self.shapes.exact(va) != self.shapes.exact(vb):
                    self.record("structure", NEUTRAL, "an annotation", scopes, [va] if va else [], [vb] if vb else [])
                continue
            if isinstance(va, list) and isinstance(vb, list):
                is_body = name in ("body", "orelse", "finalbody", "handlers")
                self.diff_list(va, vb, inner_scopes if is_body or name == "decorator_list" else scopes, chain,
                               statements=is_body)
            elif isinstance(va, ast.AST) and isinstance(vb, ast.AST):
                self.diff_node(va, vb, scopes if name in ("args", "returns") else inner_scopes, chain)
            elif isinstance(va, ast.AST) or isinstance(vb, ast.AST):
                self.structural_change("structure", [va] if va is not None else [],
                                       [vb] if vb is not None else [], scopes, chain)
            elif va != vb:
                shallow.append(name)
        if shallow:
            self.primitive_change(a, b, shallow, scopes, ancestors)

    def primitive_change(self, a: ast.AST, b: ast.AST, names: list[str], scopes: list[_Scope],
                         ancestors: list[ast.AST]) -> None:
        """An identifier, attribute or flag changed in place (`x.float` -> `x.half`, a renamed function)."""
        if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and names == ["name"]:
            # The body is compared on its own (diff_node goes on into it); the new name alone changes nothing.
            self.evidence.append(Evidence(
                file=self.file, line=getattr(b, "lineno", None), scope=self.scope_name(scopes), change="renamed",
                kind=NEUTRAL, nodes=[type(b).__name__],
                before=a.name, after=b.name, why="a definition renamed"))
            return
        self.structural_change("structure", [a], [b], scopes, ancestors)

    def diff_list(self, la: list, lb: list, scopes: list[_Scope], ancestors: list[ast.AST], *,
                  statements: bool) -> None:
        if len(la) == len(lb) and all(self._pairable(x, y) for x, y in zip(la, lb)):
            for x, y in zip(la, lb):
                self.diff_item(x, y, scopes, ancestors)
            return
        fine_a = [_fine_key(x, self.shapes) if isinstance(x, ast.AST) else ("raw", repr(x)) for x in la]
        fine_b = [_fine_key(y, self.shapes) if isinstance(y, ast.AST) else ("raw", repr(y)) for y in lb]
        removed: list[Any] = []
        added: list[Any] = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, fine_a, fine_b, autojunk=False).get_opcodes():
            if tag == "equal":
                for x, y in zip(la[i1:i2], lb[j1:j2]):
                    self.diff_item(x, y, scopes, ancestors)
                continue
            block_a, block_b = la[i1:i2], lb[j1:j2]
            if len(block_a) == len(block_b) and all(self._pairable(x, y) for x, y in zip(block_a, block_b)):
                for x, y in zip(block_a, block_b):
                    self.diff_item(x, y, scopes, ancestors)
                continue
            # Pair what is the same statement, changed, by a coarser key; the rest was added or removed.
            coarse_a = [_coarse_key(x, self.shapes) if isinstance(x, ast.AST) else ("raw",) for x in block_a]
            coarse_b = [_coarse_key(y, self.shapes) if isinstance(y, ast.AST) else ("raw",) for y in block_b]
            for tag2, p1, p2, q1, q2 in difflib.SequenceMatcher(None, coarse_a, coarse_b,
                                                                autojunk=False).get_opcodes():
                if tag2 == "equal":
                    for x, y in zip(block_a[p1:p2], block_b[q1:q2]):
                        self.diff_item(x, y, scopes, ancestors)
                elif tag2 == "replace" and p2 - p1 == q2 - q1 and not statements:
                    for x, y in zip(block_a[p1:p2], block_b[q1:q2]):
                        self.diff_item(x, y, scopes, ancestors)
                else:
                    removed.extend(block_a[p1:p2])
                    added.extend(block_b[q1:q2])
        # Moved code: a removed and an added item with the same key are one item that moved (and maybe changed).
        by_key: dict[tuple, list[Any]] = {}
        for y in added:
            by_key.setdefault(self._move_key(y), []).append(y)
        still_removed = []
        for x in removed:
            bucket = by_key.get(self._move_key(x))
            if bucket:
                y = bucket.pop(0)
                added.remove(y)
                self.diff_item(x, y, scopes, ancestors)
            else:
                still_removed.append(x)
        self._record_block(still_removed, added, scopes, ancestors)

    def _move_key(self, node: Any) -> tuple:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return ("def", node.name)
        if isinstance(node, ast.AST):
            return ("shape", self.shapes.of(node))
        return ("raw", repr(node))

    def _record_block(self, removed: list[Any], added: list[Any], scopes: list[_Scope],
                      ancestors: list[ast.AST]) -> None:
        removed = [n for n in removed if isinstance(n, ast.AST)]
        added = [n for n in added if isinstance(n, ast.AST)]
        if not removed and not added:
            return
        # Knobs (literal assignments, defaults, keyword arguments) and imports are judged one by one; the rest
        # of a block is one change (state set up inside a function goes with the code that uses it).
        def single(n: ast.AST) -> bool:
            return self.is_knob(n, scopes, ancestors) or isinstance(n, (ast.Import, ast.ImportFrom))
        singles_r = [n for n in removed if single(n)]
        singles_a = [n for n in added if single(n)]
        rest_r = [n for n in removed if n not in singles_r]
        rest_a = [n for n in added if n not in singles_a]
        for n in singles_r:
            self.structural_change("removed", [n], [], scopes, ancestors)
        for n in singles_a:
            self.structural_change("added", [], [n], scopes, ancestors)
        # Whole definitions added or removed are judged each on their own (a new kernel, a new module class).
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        # A definition replaced by a renamed, reworked one (`NorMuon` -> `NorMuonAndAdam`) is one changed
        # definition: pair them by the statements they share and compare them side by side.
        for x, y in _pair_definitions([n for n in rest_r if isinstance(n, defs)],
                                      [n for n in rest_a if isinstance(n, defs)]):
            rest_r.remove(x)
            rest_a.remove(y)
            self.diff_node(x, y, scopes, ancestors)
        for n in [x for x in rest_r if isinstance(x, defs)]:
            self.structural_change("removed", [n], [], scopes, ancestors)
        for n in [x for x in rest_a if isinstance(x, defs)]:
            self.structural_change("added", [], [n], scopes, ancestors)
        rest_r = [x for x in rest_r if not isinstance(x, defs)]
        rest_a = [x for x in rest_a if not isinstance(x, defs)]
        if rest_r and rest_a:
            self.structural_change("structure", rest_r, rest_a, scopes, ancestors)
        elif rest_r:
            self.structural_change("removed", rest_r, [], scopes, ancestors)
        elif rest_a:
            self.structural_change("added", [], rest_a, scopes, ancestors)

    def _pairable(self, x: Any, y: Any) -> bool:
        if not (isinstance(x, ast.AST) and isinstance(y, ast.AST)):
            return x == y
        if is_literal(x) and is_literal(y):
            return True
        return type(x) is type(y) and _coarse_key(x, self.shapes) == _coarse_key(y, self.shapes)

    def diff_item(self, x: Any, y: Any, scopes: list[_Scope], ancestors: list[ast.AST]) -> None:
        if isinstance(x, ast.AST) and isinstance(y, ast.AST):
            self.diff_node(x, y, scopes, ancestors)
        elif x != y:
            self.structural_change("structure", [x] if isinstance(x, ast.AST) else [],
                                   [y] if isinstance(y, ast.AST) else [], scopes, ancestors)


PAIRING_SIMILARITY = 0.4  # share of statement shapes two definitions must share to be one definition reworked


def _pair_definitions(removed: list[ast.AST], added: list[ast.AST]) -> list[tuple[ast.AST, ast.AST]]:
    """Removed and added definitions of the same type that share most of their statements, best pairs first."""
    if not removed or not added:
        return []
    shapes = {id(n): Counter(_shape(t) for t in statements_of(n)) for n in [*removed, *added]}
    scored = []
    for x in removed:
        for y in added:
            if type(x) is not type(y):
                continue
            a, b = shapes[id(x)], shapes[id(y)]
            common = sum((a & b).values())
            score = common / max(1, min(sum(a.values()), sum(b.values())))
            if score >= PAIRING_SIMILARITY and common >= 3:
                scored.append((score, x, y))
    pairs, used = [], set()
    for _, x, y in sorted(scored, key=lambda t: -t[0]):
        if id(x) not in used and id(y) not in used:
            used |= {id(x), id(y)}
            pairs.append((x, y))
    return pairs


def _diff_python(name: str, old_tree: ast.Module | None, new_tree: ast.Module | None,
                 kernel_names: frozenset[str]) -> list[Evidence]:
    empty = ast.Module(body=[], type_ignores=[])
    walker = _PythonDiff(name, old_tree or empty, new_tree or empty, kernel_names)
    walker.diff_module()
    found = walker.evidence
    if old_tree is None or new_tree is None:
        label = "file-added" if old_tree is None else "file-removed"
        if not found:
            found = [Evidence(name, None, "<module>", label, NEUTRAL, ["Module"], None, None, "an empty file")]
        for e in found:
            if e.change in ("added", "removed"):
                e.change = label
    return found


_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _diff_text(name: str, old: str | None, new: str | None) -> list[Evidence]:
    """Shell scripts (run.sh) and unparsable files, line by line: numbers only is tuning, else launch plumbing."""
    a = [ln for ln in (old or "").splitlines() if ln.strip() and not ln.strip().startswith("#")]
    b = [ln for ln in (new or "").splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if a == b:
        return []
    out: list[Evidence] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        before, after = a[i1:i2], b[j1:j2]
        numbers_only = len(before) == len(after) and all(
            _NUMBER.sub("N", x).strip() == _NUMBER.sub("N", y).strip() for x, y in zip(before, after))
        line = _line_number(new or old or "", (after or before)[0])
        kind, why = (HYPERPARAMETER, "only numbers changed") if numbers_only else (SYSTEMS, "the launch changed")
        change = "text" if before and after else ("added" if after else "removed")
        out.append(Evidence(name, line, "<script>", change, kind, ["line"],
                            _clip("; ".join(x.strip() for x in before)) if before else None,
                            _clip("; ".join(y.strip() for y in after)) if after else None, why,
                            weight=max(len(before), len(after))))
    if old is None or new is None:
        for e in out:
            e.change = "file-added" if old is None else "file-removed"
    return out


def _line_number(text: str, line: str) -> int | None:
    for i, ln in enumerate(text.splitlines(), start=1):
        if ln == line:
            return i
    return None
