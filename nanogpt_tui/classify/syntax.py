"""AST helpers every kind of evidence uses: dotted names, the names and operators a subtree uses, fingerprints."""

from __future__ import annotations

import ast
from collections import Counter
from typing import Any


SYSTEMS_ENV_PREFIXES = ("NCCL_", "TORCH_", "TORCHINDUCTOR_", "TORCHDYNAMO_", "CUDA_", "TRITON_", "PYTORCH_")


_SKIP_FIELDS = frozenset({"ctx", "type_comment", "kind"})


def dotted(node: ast.AST) -> str | None:
    """`torch._inductor.config.x` for a chain of attributes on a name; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):
        inner = dotted(node.func)
        if inner is not None and parts:
            return inner + "()." + ".".join(reversed(parts))
    return None


def _tokens(node: ast.AST | None) -> list[str]:
    """The names a subtree uses: dotted chains on a name (`dist.all_reduce`), methods called on other values
    (`.float`, `.logsumexp`), keyword names (`kw:async_op`), systems-looking environment strings, defined and
    imported names. Annotations are left out (`: float` is no cast)."""
    out: list[str] = []
    if node is None:
        return out

    def visit(n: ast.AST) -> None:
        if isinstance(n, ast.Attribute):
            chain = dotted(n) if isinstance(_chain_base(n), ast.Name) else None
            if chain is not None:
                out.append(chain)
                return
            out.append("." + n.attr)
            visit(n.value)
            return
        if isinstance(n, ast.Name):
            out.append(n.id)
            return
        if isinstance(n, ast.keyword):
            if n.arg:
                out.append(f"kw:{n.arg}")
            visit(n.value)
            return
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            if n.value.startswith(SYSTEMS_ENV_PREFIXES):
                out.append(f"env:{n.value}")
            return
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(f"def:{n.name}")
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            module = n.module if isinstance(n, ast.ImportFrom) else None
            for alias in n.names:
                out.append(f"import:{module + '.' if module else ''}{alias.name}")
            return
        for name, value in ast.iter_fields(n):
            if name in ("annotation", "returns") or name in _SKIP_FIELDS:
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item)
            elif isinstance(value, ast.AST):
                visit(value)

    visit(node)
    return out


def _chain_base(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def _multiset_difference(a: list[str], b: list[str]) -> list[str]:
    ca, cb = Counter(a), Counter(b)
    return list(((ca - cb) + (cb - ca)).elements())


def _operators(node: ast.AST) -> list[str]:
    """The arithmetic a subtree does on values that are not literals (`x1 * cos + x2 * sin`: `op:Mult` twice,
    `op:Add` once): the math of a change, which names alone do not show."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.BinOp) and not is_literal(n):
            out.append(f"op:{type(n.op).__name__}")
        elif isinstance(n, ast.AugAssign):
            out.append(f"op:{type(n.op).__name__}")
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub) and not is_literal(n):
            out.append("op:USub")
    return out


def _target_names(target: ast.AST) -> list[str]:
    """The dotted names an assignment target binds: `x`, `self.thread`, both of `a, (b, c)`."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for elt in target.elts for name in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, (ast.Name, ast.Attribute)):
        name = dotted(target)
        return [name] if name else []
    return []


def is_literal(node: ast.AST) -> bool:
    """A value written out: constants, signed constants, arithmetic on constants, tuples/lists/dicts of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not, ast.Invert)):
        return is_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return is_literal(node.left) and is_literal(node.right)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and is_literal(k) for k in node.keys) and all(is_literal(v) for v in node.values)
    return False


class _Shapes:
    """Fingerprints of subtrees, memoised per node: `of` blanks literal values (the structure), `exact` keeps
    them (an unchanged subtree is skipped at once)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[int, int]] = {}
        self._keep: list[Any] = []  # keeps nodes alive so their ids stay unique

    def _both(self, node: Any) -> tuple[int, int]:
        if isinstance(node, list):
            pairs = [self._both(n) for n in node]
            return hash(("list", tuple(p[0] for p in pairs))), hash(("list", tuple(p[1] for p in pairs)))
        if not isinstance(node, ast.AST):
            h = hash(("raw", repr(node)))
            return h, h
        key = id(node)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if is_literal(node):
            result = hash("LIT"), hash(("lit", ast.dump(node)))
        else:
            shape, exact = [type(node).__name__], [type(node).__name__]
            for name, value in ast.iter_fields(node):
                if name in _SKIP_FIELDS:
                    continue
                s_, e_ = self._both(value)
                shape.append((name, s_))
                exact.append((name, e_))
            result = hash(tuple(shape)), hash(tuple(exact))
        self._cache[key] = result
        self._keep.append(node)
        return result

    def of(self, node: Any) -> int:
        return self._both(node)[0]

    def exact(self, node: Any) -> int:
        return self._both(node)[1]


def _safe_unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001
        return type(node).__name__


def _clean(token: str) -> str:
    for prefix in ("kw:", "env:", "import:", "def:", "handle:"):
        if token.startswith(prefix):
            return token[len(prefix):]
    return token
