"""Classifying a code change against its parent as hyperparameter tuning, an algorithmic change or systems work.

Headless and standard library only (`ast`, `difflib`). The kinds:

- `hyperparameter`: only literal values changed: learning rates, step counts, schedule constants, sizes,
  tuples of window sizes (`1750 -> 1700`, `(3, 7, 11) -> (3, 5, 11)`, `2 * 1024 -> 3 * 1024`); also a
  knob added or removed (an assignment of a literal), a literal replaced by a reference to a knob, and the
  arithmetic shape of a schedule function (`get_lr`, `*_schedule`, `*warmup*`, ...) or of a
  hyperparameter class's field.
- `systems`: kernels, compilation, communication, precision plumbing: a change whose changed names are
  mostly those of `torch.compile`, Inductor/Dynamo, Triton, `torch.distributed` collectives, CUDA streams
  and graphs, pinned memory, dtypes and casts (`.bfloat16()`, `.float()`, fp8, autocast), attention
  kernels (FlashAttention, flex attention, SDPA); any change inside a `@triton.jit` function or a file of
  kernels; a literal inside a systems call or setting (`torch.compile(dynamic=...)`, `NCCL_*`); run.sh.
- `algorithmic`: any other change of structure: the model, the optimizer, data handling, the loss.
- `none`: nothing that runs changed (comments, docstrings, formatting, log messages, reordered defs).

A change usually touches several places; each changed place (an *evidence* item: file, line, the
enclosing scope, the AST node types, before/after) gets a kind of its own, and the change as a whole is
labelled by the strongest kind present, algorithmic > systems > hyperparameter > none. A **mixed** change
(e.g. a new loss term plus retuned learning rates, the way most human records look) is therefore
`algorithmic`, with `mixed: true` and `parts` counting the places of each kind; systems work plus retuned
constants is `systems`. The reasoning: retuning constants usually accompanies a new idea, and the
question the label answers is whether the change did more than retune.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HYPERPARAMETER = "hyperparameter"
ALGORITHMIC = "algorithmic"
SYSTEMS = "systems"
NONE = "none"
NEUTRAL = "neutral"  # an evidence item that does not count (a log message, an ordinary import)
KINDS = (HYPERPARAMETER, ALGORITHMIC, SYSTEMS)
PRECEDENCE = (ALGORITHMIC, SYSTEMS, HYPERPARAMETER)  # strongest first
CODE_SUFFIXES = (".py", ".sh")
MAX_EVIDENCE = 200  # evidence items kept per classification (the count says how many there were)
SNIPPET_CHARS = 120

# Name parts that make a changed name "systems": compilation, kernels, communication, memory, precision.
SYSTEMS_PARTS = frozenset({
    "compile", "_inductor", "inductor", "_dynamo", "dynamo", "_functorch", "triton", "tl", "jit", "autotune",
    "distributed", "dist", "all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "broadcast", "barrier", "async_op", "init_process_group", "ReduceOp",
    "get_future", "cuda", "synchronize", "Stream", "stream", "CUDAGraph", "cudagraphs", "empty_cache",
    "pin_memory", "non_blocking", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "fp8", "bf16",
    "_scaled_mm", "autocast", "set_float32_matmul_precision", "allow_tf32", "flash_attn",
    "flash_attn_interface", "flash_attn_func", "flash_attn_varlen_func", "flex_attention",
    "create_block_mask", "BlockMask", "scaled_dot_product_attention", "custom_op", "register_fake",
    "register_autograd", "library", "mark_dynamic", "fullgraph", "dynamic", "max_autotune", "memory_format",
    "channels_last", "register_post_accumulate_grad_hook", "nccl", "NCCL", "cpp_extension", "load_inline",
})
# Parts that are systems only as a method (`x.float()`), never as a bare name (`float(x)`, annotations).
SYSTEMS_METHODS = frozenset({"float", "half", "contiguous", "wait", "record_stream"})
SYSTEMS_ENV_PREFIXES = ("NCCL_", "TORCH_", "TORCHINDUCTOR_", "TORCHDYNAMO_", "CUDA_", "TRITON_", "PYTORCH_")
SYSTEMS_MODULES = ("triton", "flash_attn", "flash_attn_interface", "torch.distributed", "torch._inductor",
                   "torch._dynamo", "torch.cuda", "torch.utils.cpp_extension", "torch.library", "kernels")
# A structural change is systems when at least this share of the names it adds or removes are systems names.
SYSTEMS_SHARE = 1 / 3
# Scopes whose arithmetic is a schedule or a set of knobs: shape changes there are tuning.
SCHEDULE_SCOPE = re.compile(r"(^|_)(lr|lrs|schedule|sched|warmup|cooldown|decay|momentum|window|ws|frac)(_|$)|"
                            r"schedule|warmup|cooldown", re.IGNORECASE)
KNOB_CLASS = re.compile(r"hyperparam|config|args|settings|hparams", re.IGNORECASE)
KERNEL_NAME = re.compile(r"kernel|triton|cuda", re.IGNORECASE)
LOG_CALLS = frozenset({"print", "print0", "log", "log0", "logging", "logger", "warn", "warnings", "write",
                       "info", "debug", "warning"})
# Calls a schedule's arithmetic may make without becoming something else.
ARITHMETIC_CALLS = frozenset({"min", "max", "abs", "round", "int", "float", "math", "pow", "sum", "len"})
ARITHMETIC_NODES = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Name, ast.Constant,
                    ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.keyword, ast.Call, ast.Return,
                    ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.Expr, ast.operator, ast.unaryop,
                    ast.boolop, ast.cmpop, ast.expr_context, ast.Slice, ast.Pass)
_SKIP_FIELDS = frozenset({"ctx", "type_comment", "kind"})


# ------------------------------------------------------------------------------------------------ results

@dataclass
class Evidence:
    """One changed place: where it is, what changed, and the kind it counts as (with why)."""

    file: str
    line: int | None
    scope: str  # e.g. "GPT.forward", "Hyperparameters", "<module>"
    change: str  # literal | structure | added | removed | renamed | file-added | file-removed | text
    kind: str  # hyperparameter | algorithmic | systems | neutral
    nodes: list[str]  # AST node types (before -> after) or ["line"] for shell scripts
    before: str | None
    after: str | None
    why: str

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        scope = f" {self.scope}" if self.scope and self.scope != "<module>" else ""
        if self.change in ("literal", "structure", "renamed", "text") and self.before is not None \
                and self.after is not None:
            what = f"{self.before} -> {self.after}"
        elif self.change in ("added", "file-added"):
            what = f"+ {self.after}"
        elif self.change in ("removed", "file-removed"):
            what = f"- {self.before}"
        else:
            what = self.after or self.before or ""
        return f"{where}{scope}: {self.change} {what} [{self.kind}: {self.why}]"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "scope": self.scope, "change": self.change,
                "kind": self.kind, "nodes": list(self.nodes), "before": self.before, "after": self.after,
                "why": self.why, "text": self.text()}


@dataclass
class Classification:
    """A change's kind and the evidence for it."""

    kind: str
    evidence: list[Evidence] = field(default_factory=list)
    evidence_count: int = 0  # every changed place found, including those not kept in `evidence`
    parts: dict[str, int] = field(default_factory=dict)  # changed places per counted kind

    @property
    def mixed(self) -> bool:
        return len([k for k in KINDS if self.parts.get(k)]) > 1

    def summary(self) -> str:
        """`algorithmic (mixed: 2 algorithmic, 3 hyperparameter)`, `hyperparameter`, `none`."""
        if not self.mixed:
            return self.kind
        inner = ", ".join(f"{self.parts[k]} {k}" for k in PRECEDENCE if self.parts.get(k))
        return f"{self.kind} (mixed: {inner})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mixed": self.mixed, "parts": {k: self.parts.get(k, 0) for k in KINDS},
                "summary": self.summary(), "evidence_count": self.evidence_count,
                "evidence": [e.to_dict() for e in self.evidence]}


def _combine(evidence: Sequence[Evidence]) -> Classification:
    counted = Counter(e.kind for e in evidence if e.kind in KINDS)
    kind = next((k for k in PRECEDENCE if counted.get(k)), NONE)
    # Counted kinds first, strongest first, so the kept evidence explains the label.
    order = {k: i for i, k in enumerate((*PRECEDENCE, NEUTRAL))}
    ranked = sorted(evidence, key=lambda e: (order.get(e.kind, 9), e.file, e.line or 0))
    return Classification(kind=kind, evidence=ranked[:MAX_EVIDENCE], evidence_count=len(evidence),
                          parts={k: counted[k] for k in KINDS if counted.get(k)})


# ------------------------------------------------------------------------------------------------ entry points

def code_files(folder: Path) -> dict[str, str]:
    """A record or candidate folder's code: its top-level `.py` and `.sh` files, as text."""
    folder = Path(folder)
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix in CODE_SUFFIXES:
            files[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return files


def classify_dirs(parent: Path, child: Path) -> Classification:
    """Classify the change from the code in folder `parent` to the code in folder `child`."""
    return classify_sources(code_files(parent), code_files(child))


def classify_sources(parent: Mapping[str, str], child: Mapping[str, str]) -> Classification:
    """Classify the change between two sets of files ({file name: source})."""
    evidence: list[Evidence] = []
    trees: dict[tuple[str, str], ast.Module | None] = {}
    unparsable: dict[str, str] = {}
    for side, files in (("old", parent), ("new", child)):
        for name, text in files.items():
            if name.endswith(".py"):
                try:
                    trees[(side, name)] = _parse(name, text)
                except (SyntaxError, ValueError) as err:
                    unparsable[name] = f"{name} does not parse (line {getattr(err, 'lineno', '?')})"
    kernel_names = systems_names((name, tree) for (_, name), tree in trees.items() if tree is not None)
    for name in sorted(set(parent) | set(child)):
        old, new = parent.get(name), child.get(name)
        if old == new:
            continue
        if name.endswith(".py") and name not in unparsable:
            old_tree, new_tree = trees.get(("old", name)), trees.get(("new", name))
            if old_tree is not None and new_tree is not None and ast.dump(old_tree) == ast.dump(new_tree):
                continue
            evidence.extend(_diff_python(name, old_tree, new_tree, kernel_names))
        elif name.endswith(".py"):
            # Python that does not parse is compared as text: numbers only is tuning, anything else a change.
            for e in _diff_text(name, old, new):
                if e.kind == SYSTEMS:
                    e.kind, e.why = ALGORITHMIC, f"{unparsable[name]}, compared as text"
                evidence.append(e)
        else:
            evidence.extend(_diff_text(name, old, new))
    return _combine(evidence)


# ------------------------------------------------------------------------------------------------ names

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


def is_systems_token(token: str, systems_names: frozenset[str] = frozenset()) -> bool:
    """Whether a name from `_tokens` belongs to systems work; `systems_names` are names the code itself defines
    as kernels or imports from kernel modules (`relu_square` from `triton_kernels`)."""
    if token.startswith("env:"):
        return True
    if token.startswith("import:"):
        module = token[len("import:"):]
        return any(module == m or module.startswith(m + ".") for m in SYSTEMS_MODULES) or \
            any(p in SYSTEMS_PARTS or KERNEL_NAME.search(p) for p in module.split("."))
    if token.startswith("kw:"):
        return token[3:] in SYSTEMS_PARTS
    if token.startswith("def:"):
        return bool(KERNEL_NAME.search(token[4:]))
    parts = [p for p in token.replace("()", "").split(".") if p]
    if any(p in SYSTEMS_PARTS for p in parts):
        return True
    if parts and not token.startswith(".") and parts[0] in systems_names:
        return True
    # `.float()` is a cast; `float` alone is the builtin.
    return len(parts) > 1 and parts[-1] in SYSTEMS_METHODS or (token.startswith(".") and parts[-1] in SYSTEMS_METHODS)


def systems_names(trees: Iterable[tuple[str, ast.Module]]) -> frozenset[str]:
    """Names the code defines as kernels (a `@triton.jit` function, a function in a kernel file, one named
    `*kernel*`) or imports from a kernel module, in any of the given files."""
    names: set[str] = set()
    for file, tree in trees:
        kernel_file = bool(KERNEL_NAME.search(Path(file).stem)) or _imports_triton(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if kernel_file or KERNEL_NAME.search(node.name) or _triton_decorated(node):
                    names.add(node.name)
            elif isinstance(node, ast.ImportFrom) and node.module and is_systems_token(f"import:{node.module}"):
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if is_systems_token(f"import:{alias.name}") and alias.asname:
                        names.add(alias.asname)
        if kernel_file:
            names.add(Path(file).stem)
    return frozenset(names)


def _imports_triton(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "triton" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "triton":
            return True
    return False


def _triton_decorated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for dec in node.decorator_list:
        name = dotted(dec.func if isinstance(dec, ast.Call) else dec) or ""
        if name.split(".")[0] == "triton":
            return name
    return None


def _multiset_difference(a: list[str], b: list[str]) -> list[str]:
    ca, cb = Counter(a), Counter(b)
    return list(((ca - cb) + (cb - ca)).elements())


# ------------------------------------------------------------------------------------------------ literals

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


# ------------------------------------------------------------------------------------------------ python

def _strip_docstrings(tree: ast.AST) -> None:
    """Drop docstrings and bare string statements: they do not run."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]
            if len(kept) != len(body):
                node.body = kept or [ast.Pass()]


@functools.lru_cache(maxsize=64)
def _parse(name: str, text: str) -> ast.Module:
    """The file's AST without docstrings; cached (the same parent is compared with many children). Callers
    must not change the tree."""
    tree = ast.parse(text, filename=name)
    _strip_docstrings(tree)
    return tree


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


@dataclass
class _Scope:
    name: str
    node: ast.AST | None


class _PythonDiff:
    """Walks two ASTs side by side and records each changed place with its kind."""

    def __init__(self, file: str, old_tree: ast.Module, new_tree: ast.Module,
                 kernel_names: frozenset[str] = frozenset()) -> None:
        self.file = file
        self.shapes = _Shapes()
        self.evidence: list[Evidence] = []
        self.old_tree, self.new_tree = old_tree, new_tree
        self.kernel_names = kernel_names
        self.file_is_systems = bool(KERNEL_NAME.search(Path(file).stem)) or _imports_triton(new_tree) \
            or _imports_triton(old_tree)

    def is_sys(self, token: str) -> bool:
        return is_systems_token(token, self.kernel_names)

    # ---- snippets and places

    @staticmethod
    def snippet(node: ast.AST | Sequence[ast.AST] | None) -> str | None:
        if node is None:
            return None
        nodes = list(node) if isinstance(node, (list, tuple)) else [node]
        if not nodes:
            return None
        parts = []
        for n in nodes:
            try:
                text = ast.unparse(n)
            except Exception:  # noqa: BLE001 - unparse of an odd node: fall back to its type
                text = type(n).__name__
            parts.append(" ".join(text.split()))
        text = "; ".join(parts)
        return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"

    @staticmethod
    def line_of(*nodes: Any) -> int | None:
        for n in nodes:
            if isinstance(n, (list, tuple)):
                n = n[0] if n else None
            line = getattr(n, "lineno", None)
            if line:
                return line
        return None

    @staticmethod
    def scope_name(scopes: Sequence[_Scope]) -> str:
        names = [s.name for s in scopes if s.name]
        return ".".join(names) or "<module>"

    # ---- scope properties

    def systems_scope(self, scopes: Sequence[_Scope]) -> str | None:
        if self.file_is_systems:
            return f"{self.file} holds kernels"
        for s in scopes:
            node = s.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decorator = _triton_decorated(node)
                if decorator:
                    return f"inside @{decorator} {node.name}"
                if KERNEL_NAME.search(node.name):
                    return f"inside the kernel function {node.name}"
        return None

    @staticmethod
    def knob_scope(scopes: Sequence[_Scope]) -> str | None:
        for s in reversed(scopes):
            node = s.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and SCHEDULE_SCOPE.search(node.name):
                return f"schedule function {node.name}"
            if isinstance(node, ast.ClassDef) and KNOB_CLASS.search(node.name):
                return f"hyperparameter class {node.name}"
        return None

    @staticmethod
    def in_log_call(ancestors: Sequence[ast.AST]) -> str | None:
        for node in reversed(ancestors):
            if isinstance(node, ast.Call):
                name = dotted(node.func) or ""
                if any(part in LOG_CALLS for part in name.split(".")[-1:]) or name.split(".")[0] in LOG_CALLS:
                    return f"inside {name}(...)"
            if isinstance(node, ast.Assert):
                return "an assertion message"
            if isinstance(node, ast.JoinedStr):
                return "inside an f-string"
            if isinstance(node, ast.stmt):
                break
        return None

    @staticmethod
    def literal_context(ancestors: Sequence[ast.AST]) -> tuple[str, list[str]]:
        """A name for where a literal sits (`Hyperparameters.lr`, `torch.compile(dynamic=)`) and the names
        around it that decide whether it is a systems setting."""
        label, names = "", []
        for node in reversed(ancestors):
            if isinstance(node, ast.keyword) and node.arg and not label:
                label = f"{node.arg}="
                names.append(f"kw:{node.arg}")
            elif isinstance(node, ast.Call):
                func = dotted(node.func)
                if func:
                    names.append(func)
                    label = f"{func}({label})" if label else f"{func}(...)"
                break
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.extend(_tokens(t))
                if not label:
                    label = ", ".join(filter(None, (dotted(t) or _safe_unparse(t) for t in targets)))
                break
            elif isinstance(node, ast.stmt):
                break
        return label, names

    # ---- recording

    def record(self, change: str, kind: str, why: str, scopes: Sequence[_Scope], old: Any, new: Any,
               label: str = "") -> None:
        nodes_old = old if isinstance(old, (list, tuple)) else ([old] if old is not None else [])
        nodes_new = new if isinstance(new, (list, tuple)) else ([new] if new is not None else [])
        types = sorted({type(n).__name__ for n in nodes_old}), sorted({type(n).__name__ for n in nodes_new})
        node_text = [" ".join(types[0]) + (" -> " + " ".join(types[1]) if types[1] and types[1] != types[0] else "")
                     if types[0] else " ".join(types[1])]
        scope = self.scope_name(scopes)
        if label:
            scope = f"{scope}.{label}" if scope != "<module>" else label
        self.evidence.append(Evidence(
            file=self.file, line=self.line_of(nodes_new, nodes_old), scope=scope, change=change, kind=kind,
            nodes=node_text, before=self.snippet(nodes_old), after=self.snippet(nodes_new), why=why))

    def literal_change(self, a: ast.AST, b: ast.AST, scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> None:
        cosmetic = self.in_log_call(ancestors)
        label, names = self.literal_context(ancestors)
        if cosmetic:
            self.record("literal", NEUTRAL, f"text {cosmetic}", scopes, a, b, label)
            return
        systems = self.systems_scope(scopes)
        if systems is None:
            hits = [n for n in names if self.is_sys(n)]
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and is_systems_token(f"env:{a.value}"):
                hits.append(a.value)
            if hits:
                systems = f"a setting of {', '.join(sorted(set(hits)))}"
        if systems:
            self.record("literal", SYSTEMS, systems, scopes, a, b, label)
        else:
            self.record("literal", HYPERPARAMETER, "literal value", scopes, a, b, label)

    def structural_change(self, change: str, old: Sequence[ast.AST], new: Sequence[ast.AST],
                          scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> None:
        old, new = list(old), list(new)
        cosmetic = self.in_log_call(ancestors)
        if cosmetic:
            self.record(change, NEUTRAL, f"logging {cosmetic}", scopes, old, new)
            return
        if all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
               and (dotted(n.value.func) or "").split(".")[-1] in LOG_CALLS for n in [*old, *new]):
            self.record(change, NEUTRAL, "logging calls", scopes, old, new)
            return
        if all(isinstance(n, ast.Pass) for n in [*old, *new]):
            self.record(change, NEUTRAL, "pass statements", scopes, old, new)
            return
        tokens_old = [t for n in old for t in _tokens(n)]
        tokens_new = [t for n in new for t in _tokens(n)]
        changed = _multiset_difference(tokens_old, tokens_new) if old and new else tokens_old + tokens_new
        hits = sorted({t for t in changed if self.is_sys(t)})
        # Imports: systems modules are systems work; any other import just follows the code that uses it.
        if all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in [*old, *new]):
            if hits:
                self.record(change, SYSTEMS, f"imports {', '.join(_clean(h) for h in hits)}", scopes, old, new)
            else:
                self.record(change, NEUTRAL, "an import", scopes, old, new)
            return
        systems = self.systems_scope(scopes)
        if systems is None:
            for n in [*old, *new]:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = self.systems_scope([_Scope(n.name, n)]) if not self.file_is_systems else None
                    if inner:
                        systems = inner.replace("inside", "adds or removes")
        if systems:
            self.record(change, SYSTEMS, systems, scopes, old, new)
            return
        if hits and sum(1 for t in changed if self.is_sys(t)) / max(1, len(changed)) >= SYSTEMS_SHARE:
            self.record(change, SYSTEMS, "changes " + ", ".join(_clean(h) for h in hits[:6]), scopes, old, new)
            return
        # A knob added or removed: an assignment of a literal value.
        if not (old and new) and all(_assigns_literal(n) for n in [*old, *new]):
            self.record(change, HYPERPARAMETER, "a knob " + ("added" if new else "removed"), scopes, old, new)
            return
        # A literal replaced by a reference to a knob (or back).
        if len(old) == len(new) == 1 and _literal_vs_reference(old[0], new[0]):
            self.record(change, HYPERPARAMETER, "a value now read from a knob", scopes, old, new)
            return
        knob = self.knob_scope(scopes)
        if knob and all(_is_arithmetic(n) for n in [*old, *new]):
            self.record(change, HYPERPARAMETER, f"arithmetic of the {knob}", scopes, old, new)
            return
        why = "structure changed"
        if changed:
            names = sorted({_clean(t) for t in changed if not t.startswith("kw:")})[:6]
            if names:
                why += ": " + ", ".join(names)
        self.record(change, ALGORITHMIC, why, scopes, old, new)

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
                kind=SYSTEMS if KERNEL_NAME.search(a.name + b.name) else NEUTRAL, nodes=[type(b).__name__],
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
        # Knob-like statements and imports are judged one by one; the rest of a block is one change.
        singles_r = [n for n in removed if _assigns_literal(n) or isinstance(n, (ast.Import, ast.ImportFrom))]
        singles_a = [n for n in added if _assigns_literal(n) or isinstance(n, (ast.Import, ast.ImportFrom))]
        rest_r = [n for n in removed if n not in singles_r]
        rest_a = [n for n in added if n not in singles_a]
        for n in singles_r:
            self.structural_change("removed", [n], [], scopes, ancestors)
        for n in singles_a:
            self.structural_change("added", [], [n], scopes, ancestors)
        # Whole definitions added or removed are judged each on their own (a new kernel, a new module class).
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
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


def _safe_unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001
        return type(node).__name__


def _clean(token: str) -> str:
    for prefix in ("kw:", "env:", "import:", "def:"):
        if token.startswith(prefix):
            return token[len(prefix):]
    return token


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
                            _clip("; ".join(y.strip() for y in after)) if after else None, why))
    if old is None or new is None:
        for e in out:
            e.change = "file-added" if old is None else "file-removed"
    return out


def _line_number(text: str, line: str) -> int | None:
    for i, ln in enumerate(text.splitlines(), start=1):
        if ln == line:
            return i
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"


# ------------------------------------------------------------------------------------------------ distance

def code_distance(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    """How many lines differ between two sets of files (multiset symmetric difference): cheap, for choosing
    the nearest earlier code as an experiment's parent when nothing records it."""
    total = 0
    for name in set(a) | set(b):
        ca = Counter(line.strip() for line in (a.get(name) or "").splitlines() if line.strip())
        cb = Counter(line.strip() for line in (b.get(name) or "").splitlines() if line.strip())
        total += sum(((ca - cb) + (cb - ca)).values())
    return total


def nearest(code: Mapping[str, str], candidates: Iterable[tuple[str, Mapping[str, str]]]) -> str | None:
    """The label of the candidate whose code is closest to `code`; ties go to the latest candidate."""
    best, best_d = None, None
    for label, other in candidates:
        d = code_distance(code, other)
        if best_d is None or d <= best_d:
            best, best_d = label, d
    return best
