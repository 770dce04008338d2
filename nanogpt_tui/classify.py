"""Classifying a code change against its parent as hyperparameter tuning, an algorithmic change or systems work.

Headless and standard library only (`ast`, `difflib`). The kinds:

- `hyperparameter`: only literal values changed: learning rates, step counts, schedule constants, sizes,
  tuples of window sizes (`1750 -> 1700`, `(3, 7, 11) -> (3, 5, 11)`, `2 * 1024 -> 3 * 1024`); also a
  knob added or removed (an assignment of a literal at module level, in a class or in `__init__`, a literal
  parameter default, a literal keyword argument such as `head_dim=128`), a literal replaced by a reference to
  a knob, and the arithmetic shape of a schedule function (`get_lr`, `*_schedule`, `*warmup*`, ...) or of a
  hyperparameter class's field (`Hyperparameters`, `*Config`, `Args`, `*Settings`, `HParams`: anchored, so
  `AttnArgs` is not one). State set up inside a function (`idx = 0`, `futures = []`, `self.thread = None`)
  is no knob: it goes with the code that uses it.
- `systems`: kernels, compilation, communication, precision plumbing, host-side concurrency: a change whose
  changed names are mostly those of `torch.compile`, Inductor/Dynamo, Triton, `torch.distributed`
  collectives, CUDA streams and graphs, pinned memory, dtypes and casts (`.bfloat16()`, `.float()`,
  `.to(dtype=torch.float32)`, `.type_as(...)`, fp8, autocast), attention kernels (FlashAttention, flex
  attention, SDPA), threads, events, queues and executors; any change inside a `@triton.jit` function or a
  `torch.library` custom op, or in a file of kernels (named so, `triton_kernels.py`, or mostly kernels:
  importing triton is not enough, every 2025 record's single train_gpt.py does); a literal inside a systems
  call or setting (`torch.compile(dynamic=...)`, `NCCL_*`); a change in the header of a statement whose body
  is systems work (`if isinstance(m, (nn.Embedding, nn.Linear)): m.bfloat16()`); run.sh. In the share of
  changed names, names the changed code binds itself (its locals, parameters, the attributes it assigns) and
  language glue (`len`, `.append`, `.size`) are left out, names bound to a thread, event, queue, stream or
  future (or an instance of the file's own class wrapping one) count as systems, and dtype/device/rank
  plumbing counts fully where it is what changed, half inside wholly new code.
- `algorithmic`: any other change of structure: the model, the optimizer, data handling, the loss.
- `none`: nothing that runs changed (comments, docstrings, formatting, log messages, reordered defs,
  type annotations, a consistent rename of a name the code defines, the run id or log path).

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
    "type_as", "float64", "tf32",
    # host-side concurrency: threads, queues, executors, events (data loading overlapped with compute)
    "threading", "Thread", "Event", "queue", "Queue", "SimpleQueue", "concurrent", "futures", "Future",
    "ThreadPoolExecutor", "ProcessPoolExecutor", "multiprocessing", "asyncio", "Lock", "RLock", "Semaphore",
})
# Parts that are systems only as a method (`x.float()`), never as a bare name (`float(x)`, annotations).
SYSTEMS_METHODS = frozenset({"float", "half", "double", "contiguous", "wait", "record_stream"})
# Precision, placement and sharding plumbing that is systems work where it is what changed (`x.to(dtype=
# torch.float32) -> x`), but is only half a sign inside new code (`torch.zeros(n, dtype=torch.float32,
# device=x.device)` is a new tensor first): the `dtype=` / `device=` keywords, `.dtype` / `.device`, `.to(...)`,
# `float32`, the process's `rank` and `world_size`.
WEAK_SYSTEMS_KEYWORDS = frozenset({"dtype", "device"})
WEAK_SYSTEMS_PARTS = frozenset({"float32", "rank", "world_size", "local_rank"})
WEAK_SYSTEMS_ATTRS = frozenset({"dtype", "device", "to"})
# Language glue: builtins, container methods and shape queries say nothing about the kind of a change, and are
# left out of the systems share (a rewritten optimizer step is full of `len`, `.append`, `.size`).
GLUE_NAMES = frozenset({"len", "range", "zip", "enumerate", "min", "max", "abs", "round", "sum", "any", "all",
                        "getattr", "setattr", "hasattr", "isinstance", "list", "dict", "tuple", "set", "int", "float",
                        "bool", "str", "sorted", "reversed", "iter", "next", "map", "filter", "type", "super"})
GLUE_METHODS = frozenset({"append", "extend", "pop", "insert", "items", "keys", "values", "get", "update", "size",
                          "shape", "ndim", "numel", "dim"})
# Calls whose result is a handle of systems work (a thread, event, queue, stream, future): a name bound to one
# is systems wherever it is used (`self.ready = threading.Event()` ... `self.ready.wait()`).
HANDLE_CALLS = frozenset({"Thread", "Event", "Queue", "SimpleQueue", "LifoQueue", "Lock", "RLock", "Condition",
                          "Semaphore", "ThreadPoolExecutor", "ProcessPoolExecutor", "Process", "Stream", "CUDAGraph",
                          "get_future", "submit"})
SYSTEMS_ENV_PREFIXES = ("NCCL_", "TORCH_", "TORCHINDUCTOR_", "TORCHDYNAMO_", "CUDA_", "TRITON_", "PYTORCH_")
SYSTEMS_MODULES = ("triton", "flash_attn", "flash_attn_interface", "torch.distributed", "torch._inductor",
                   "torch._dynamo", "torch.cuda", "torch.utils.cpp_extension", "torch.library", "kernels")
# A structural change is systems when at least this share of the names it adds or removes are systems names.
SYSTEMS_SHARE = 1 / 3
# Scopes whose arithmetic is a schedule or a set of knobs: shape changes there are tuning.
SCHEDULE_SCOPE = re.compile(r"(^|_)(lr|lrs|schedule|sched|warmup|cooldown|decay|momentum|window|ws|frac)(_|$)|"
                            r"schedule|warmup|cooldown", re.IGNORECASE)
# Classes whose fields are knobs: anchored, so `AttnArgs` (a bundle of tensors) is not one.
KNOB_CLASS = re.compile(r"^(\w*hyperparam(eter)?s?|h?params|args|\w*settings|\w*config)$", re.IGNORECASE)
# Assignments that name the run or its logs, not the training (`run_id = f"yarn/{uuid.uuid4()}"`).
RUN_LABEL = re.compile(r"(^|_)(run_?id|run_?name|uuid|tag|log|logs|log_?dir|log_?file|log_?path|logfile)$",
                       re.IGNORECASE)
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
    if token.startswith("handle:"):
        return True
    if token.startswith("def:"):
        return bool(KERNEL_NAME.search(token[4:]))
    parts = [p for p in token.replace("()", "").split(".") if p]
    if any(p in SYSTEMS_PARTS for p in parts):
        return True
    if parts and not token.startswith(".") and parts[0] in systems_names:
        return True
    # `.float()` is a cast; `float` alone is the builtin.
    return len(parts) > 1 and parts[-1] in SYSTEMS_METHODS or (token.startswith(".") and parts[-1] in SYSTEMS_METHODS)


def is_weak_systems_token(token: str) -> bool:
    """Precision and placement plumbing (`dtype=`, `.device`, `.to(...)`, `torch.float32`): see
    `WEAK_SYSTEMS_KEYWORDS`."""
    if token.startswith("kw:"):
        return token[3:] in WEAK_SYSTEMS_KEYWORDS
    if token.startswith(("env:", "import:", "def:", "handle:")):
        return False
    parts = [p for p in token.replace("()", "").split(".") if p]
    if any(p in WEAK_SYSTEMS_PARTS for p in parts):
        return True
    return bool(parts) and (len(parts) > 1 or token.startswith(".")) and parts[-1] in WEAK_SYSTEMS_ATTRS


def systems_names(trees: Iterable[tuple[str, ast.Module]]) -> frozenset[str]:
    """Names the code defines as kernels or imports from a kernel module, in any of the given files: a
    `@triton.jit` (or other `@triton.*`) function, a `torch.library` custom op, a function named `*kernel*`, a
    function that launches one of those (`ns_kernel[grid](...)`), the names imported from a kernel module
    (`relu_square` from `triton_kernels`) and the module itself. Importing triton does not make every other
    function of the file a kernel: a record's single train_gpt.py holds its model, optimizer and schedule too."""
    names: set[str] = set()
    for file, tree in trees:
        names |= _file_systems_names(file, tree)
    return frozenset(names)


@functools.lru_cache(maxsize=64)
def _file_systems_names(file: str, tree: ast.Module) -> frozenset[str]:
    """`systems_names` of one file (cached: parsed trees are cached and not changed)."""
    names: set[str] = set()
    kernels: set[str] = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in functions:
        if KERNEL_NAME.search(node.name) or _triton_decorated(node) or _custom_op_decorated(node):
            if node.name != "_":
                kernels.add(node.name)
    for node in functions:
        if node.name not in kernels and node.name != "_" and _launches(node, kernels):
            kernels.add(node.name)
    names |= kernels
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and is_systems_token(f"import:{node.module}"):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if is_systems_token(f"import:{alias.name}") and alias.asname:
                    names.add(alias.asname)
    if _is_kernel_file(file, tree):
        names.add(Path(file).stem)
    return frozenset(names)


def _launches(node: ast.AST, kernels: set[str]) -> bool:
    """Whether a function launches a Triton kernel of `kernels` (`name[grid](...)`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript) and isinstance(n.func.value, ast.Name) \
                and n.func.value.id in kernels:
            return True
    return False


def _is_kernel_file(file: str, tree: ast.Module | None) -> bool:
    """A file of kernels: named so (`triton_kernels.py`, `cuda_ops.py`), or most of its top-level functions and
    classes are `@triton.*` functions, custom ops and the functions that launch them. Importing triton is not
    enough (every 2025 record's single train_gpt.py imports it for one Newton-Schulz kernel)."""
    if KERNEL_NAME.search(Path(file).stem):
        return True
    if tree is None:
        return False
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    functions = [n for n in defs if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    kernels = {n.name for n in functions if _triton_decorated(n)}
    if not kernels:
        return False
    kernel_like = kernels | {n.name for n in functions if _custom_op_decorated(n) or _launches(n, kernels)}
    return 2 * len(kernel_like) > len(defs)


def _custom_op_decorated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """`@torch.library.custom_op(...)`, `@custom_op(...)`, `@op.register_fake` / `register_autograd` / ..."""
    for dec in node.decorator_list:
        name = dotted(dec.func if isinstance(dec, ast.Call) else dec) or ""
        last = name.split(".")[-1]
        if "library" in name.split(".") or last in ("custom_op", "register_fake", "register_autograd",
                                                    "register_kernel", "impl_abstract"):
            return name
    return None


def _triton_decorated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for dec in node.decorator_list:
        name = dotted(dec.func if isinstance(dec, ast.Call) else dec) or ""
        if name.split(".")[0] == "triton":
            return name
    return None


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


def _glue(token: str) -> bool:
    if token.startswith(("kw:", "env:", "import:", "def:", "handle:", "op:")):
        return False
    parts = [p for p in token.replace("()", "").split(".") if p]
    if not parts:
        return True
    if len(parts) == 1 and not token.startswith("."):
        return parts[0] in GLUE_NAMES
    return parts[-1] in GLUE_METHODS


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


def _handle_call(value: ast.AST | None, classes: frozenset[str] = frozenset()) -> bool:
    """Whether a value is a handle of systems work: a thread, event, queue, executor, CUDA stream or graph, a
    future, the work object of an asynchronous collective (`dist.all_reduce(..., async_op=True)`), or an instance
    of one of `classes` (the file's own helpers that wrap such handles, see `_handle_classes`)."""
    node = value
    while isinstance(node, ast.Call):
        name = dotted(node.func) or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
        if name.split(".")[-1] in HANDLE_CALLS or name in classes:
            return True
        if any(k.arg == "async_op" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in node.keywords):
            return True
        node = node.func.value if isinstance(node.func, ast.Attribute) else None
    return False


def _bindings(nodes: Iterable[ast.AST], classes: frozenset[str] = frozenset()) -> tuple[set[str], set[str]]:
    """The names some code binds itself (assignment targets, loop and comprehension variables, `with ... as`,
    parameters other than self/cls, exception names, definitions) and those of them bound to a systems handle."""
    bound: set[str] = set()
    handles: set[str] = set()
    for node in nodes:
        for n in ast.walk(node):
            targets: list[ast.AST] = []
            value: ast.AST | None = None
            if isinstance(n, ast.Assign):
                targets, value = n.targets, n.value
            elif isinstance(n, (ast.AnnAssign, ast.AugAssign)):
                targets, value = [n.target], n.value
            elif isinstance(n, ast.NamedExpr):
                targets, value = [n.target], n.value
            elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
                targets = [n.target]
            elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                targets, value = [n.optional_vars], n.context_expr
            elif isinstance(n, ast.arg) and n.arg not in ("self", "cls"):
                bound.add(n.arg)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                bound.add(n.name)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(n.name)
            for t in targets:
                names = _target_names(t)
                bound.update(names)
                if _handle_call(value, classes):
                    handles.update(names)
    return bound, handles


@functools.lru_cache(maxsize=64)
def _file_handles(tree: ast.Module, classes: frozenset[str] = frozenset()) -> frozenset[str]:
    """Attributes (`self.ready`) and module-level names a file binds to a systems handle anywhere."""
    _, handles = _bindings([tree], classes)
    _, module_level = _bindings([n for n in tree.body if not isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], classes)
    return frozenset({h for h in handles if "." in h} | module_level)


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


@functools.lru_cache(maxsize=64)
def _handle_classes(tree: ast.Module) -> frozenset[str]:
    """The file's classes that wrap systems handles: every method but `__init__` works a thread, event, queue or
    stream the instance holds (a background shard loader). A class whose main method does other work (a batch
    finder that also starts a thread) is not one."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        _, handles = _bindings([node])
        attrs = {h for h in handles if h.startswith("self.")}
        methods = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and m.name != "__init__"]
        if not attrs or not methods:
            continue
        if all(any(t == a or t.startswith(a + ".") for t in _tokens(m) for a in attrs) for m in methods):
            out.add(node.name)
    return frozenset(out)


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
        self.file_is_systems = _is_kernel_file(file, new_tree) or _is_kernel_file(file, old_tree)
        self.handle_classes = _handle_classes(old_tree) | _handle_classes(new_tree)
        self.handles = set(_file_handles(old_tree, self.handle_classes) | _file_handles(new_tree, self.handle_classes))
        self._function_handles: dict[int, set[str]] = {}  # per enclosing function, filled as needed
        self._ids_old, self._ids_new = _identifiers(old_tree), _identifiers(new_tree)
        self._literal_default_args = {id(a) for t in (old_tree, new_tree) for a in _args_with_literal_defaults(t)}

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
                decorator = _custom_op_decorated(node)
                if decorator:
                    return f"inside the custom op @{decorator} {node.name}"
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
        label = self.run_label(old, new, ancestors)
        if label:
            self.record(change, NEUTRAL, f"names the run ({label})", scopes, old, new)
            return
        renamed = self.consistent_rename(old, new)
        if renamed:
            self.record(change, NEUTRAL, "a consistent rename: " + ", ".join(f"{a} -> {b}" for a, b in renamed[:4]),
                        scopes, old, new)
            return
        share, hits, changed = self.systems_share(old, new, scopes)
        # Imports: systems modules are systems work; any other import just follows the code that uses it.
        if all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in [*old, *new]):
            hits = sorted({t for n in [*old, *new] for t in _tokens(n) if self.is_sys(t)})
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
        if systems is None:
            systems = self.systems_guard(old, new, ancestors)
        if systems:
            self.record(change, SYSTEMS, systems, scopes, old, new)
            return
        if hits and share >= SYSTEMS_SHARE:
            self.record(change, SYSTEMS, "changes " + ", ".join(_clean(h) for h in hits[:6]), scopes, old, new)
            return
        # A knob added or removed: an assignment of a literal value where knobs live, a literal default of a
        # parameter, a literal keyword argument.
        if not (old and new) and all(self.is_knob(n, scopes, ancestors) for n in [*old, *new]):
            self.record(change, HYPERPARAMETER, "a knob " + ("added" if new else "removed"), scopes, old, new)
            return
        if not (old and new) and all(id(n) in self._literal_default_args for n in [*old, *new]):
            self.record(change, NEUTRAL, "a parameter with a literal default (the default is the knob)", scopes, old,
                        new)
            return
        if not (old and new) and all(isinstance(n, ast.stmt) and _is_state_init(n) for n in [*old, *new]) \
                and self.in_function(scopes):
            self.record(change, NEUTRAL, "state set up (an empty container, a counter, a flag)", scopes, old, new)
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
            names = sorted({_clean(t) for t in changed if not t.startswith(("kw:", "op:"))})[:6]
            if names:
                why += ": " + ", ".join(names)
        self.record(change, ALGORITHMIC, why, scopes, old, new)

    # ---- judging a structural change

    def systems_share(self, old: Sequence[ast.AST], new: Sequence[ast.AST],
                      scopes: Sequence[_Scope] = ()) -> tuple[float, list[str], list[str]]:
        """The share of the changed names that are systems names, the systems names, and the names counted.

        Names the changed code binds itself (its locals, parameters, attributes it assigns, its definitions) say
        nothing about what kind of code it is and are left out, so a rewritten optimizer step full of new locals
        is judged by what it calls (`dist.reduce_scatter_tensor`, `.wait`); a name bound to a thread, event,
        stream or future is a systems name wherever it is used. Precision plumbing (`dtype=`, `.to(...)`) counts
        fully where it is what changed, half inside wholly new or removed code."""
        tokens_old = [t for n in old for t in [*_tokens(n), *_operators(n)]]
        tokens_new = [t for n in new for t in [*_tokens(n), *_operators(n)]]
        changed = _multiset_difference(tokens_old, tokens_new) if old and new else tokens_old + tokens_new
        bound, handles = _bindings([*old, *new], self.handle_classes)
        handles |= self.handles
        function = next((s.node for s in reversed(scopes)
                         if isinstance(s.node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if function is not None:  # a local of the enclosing function bound to a handle elsewhere in it
            if id(function) not in self._function_handles:
                self._function_handles[id(function)] = _bindings([function], self.handle_classes)[1]
            handles |= self._function_handles[id(function)]
        roots = bound | handles
        counted = [t for t in (self._localize(t, roots, handles) for t in changed) if t is not None and not _glue(t)]
        weak_weight = 1.0 if old and new else 0.5
        weight = 0.0
        hits: set[str] = set()
        for t in counted:
            if self.is_sys(t):
                weight += 1
                hits.add(t)
            elif is_weak_systems_token(t):
                weight += weak_weight
                hits.add(t)
        return weight / max(1, len(counted)), sorted(hits), counted

    def _localize(self, token: str, roots: set[str], handles: set[str]) -> str | None:
        """A changed name as the share counts it: None for a name the code binds itself, the method part of a
        chain on such a name (`x.float` -> `.float`), `handle:...` for a use of a systems handle."""
        if token.startswith("def:"):
            return token if self.is_sys(token) else None
        if token.startswith(("kw:", "env:", "import:", "op:", ".")):
            return token
        if token in ("self", "cls"):
            return None
        parts = token.split(".")
        for i in range(len(parts), 0, -1):
            root = ".".join(parts[:i])
            root = root[:-2] if root.endswith("()") else root
            if root in roots:
                if root in handles:
                    return "handle:" + token
                rest = parts[i:]
                return "." + ".".join(rest) if rest else None
        return token

    def systems_guard(self, old: Sequence[ast.AST], new: Sequence[ast.AST], ancestors: Sequence[ast.AST]) -> str | None:
        """A change in the header of a statement whose body is systems work (a cast, a compile, a collective) is
        judged by that body: `if isinstance(m, nn.Embedding): m.bfloat16()` -> `(nn.Embedding, nn.Linear)`
        decides what runs in bfloat16."""
        if ancestors and isinstance(ancestors[-1], ast.Call) and all(isinstance(n, ast.keyword) for n in [*old, *new]):
            func = dotted(ancestors[-1].func)
            if func and self.is_sys(func):
                return f"a setting of {func}"
        compound = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)
        same_body = len(old) == len(new) == 1 and type(old[0]) is type(new[0]) and isinstance(old[0], compound) \
            and all(self.shapes.exact(getattr(old[0], f, [])) == self.shapes.exact(getattr(new[0], f, []))
                    for f in ("body", "orelse"))
        if same_body:
            stmt: ast.AST | None = new[0]  # the same body under a changed header
        elif any(isinstance(n, ast.stmt) for n in [*old, *new]):
            return None
        else:
            stmt = next((a for a in reversed(ancestors) if isinstance(a, ast.stmt)), None)
        if not isinstance(stmt, compound):
            return None
        if not stmt.body or len(stmt.body) > 3:
            return None
        names: list[str] = []
        for st in stmt.body:
            found = [t for t in _tokens(st) if self.is_sys(t)]
            if not found:
                return None
            names.extend(found)
        return "decides where systems work runs: " + ", ".join(sorted({_clean(t) for t in names})[:4])

    def consistent_rename(self, old: Sequence[ast.AST], new: Sequence[ast.AST]) -> list[tuple[str, str]]:
        """The (old, new) identifier pairs when the change only renames names the code defines, everywhere
        (`rotary_cos -> cos`: the old name is gone from the new file); [] otherwise."""
        if not old or len(old) != len(new):
            return []
        pairs: list[tuple[str, str]] = []
        if not _renamed_identifiers(list(old), list(new), pairs) or not pairs:
            return []
        used_new, bound_new = self._ids_new
        _, bound_old = self._ids_old
        mapping: dict[str, str] = {}
        for a, b in pairs:
            if mapping.setdefault(a, b) != b or a not in bound_old or b not in bound_new or a in used_new:
                return []
        return sorted(mapping.items())

    @staticmethod
    def run_label(old: Sequence[ast.AST], new: Sequence[ast.AST], ancestors: Sequence[ast.AST]) -> str | None:
        """A change to the value of `run_id`, a log path or a tag: it names the run, it does not change it."""
        stmts = [n for n in [*old, *new] if isinstance(n, ast.stmt)]
        if stmts and len(stmts) == len(old) + len(new):
            candidates: list[ast.AST] = stmts
        elif not stmts:
            stmt = next((a for a in reversed(ancestors) if isinstance(a, ast.stmt)), None)
            candidates = [stmt] if stmt is not None else []
        else:
            return None
        names: list[str] = []
        for st in candidates:
            if not isinstance(st, (ast.Assign, ast.AnnAssign)):
                return None
            targets = st.targets if isinstance(st, ast.Assign) else [st.target]
            found = [n for t in targets for n in _target_names(t)]
            if not found or not all(RUN_LABEL.search(n.split(".")[-1]) for n in found):
                return None
            names.extend(found)
        return ", ".join(names) if names else None

    def is_knob(self, node: ast.AST, scopes: Sequence[_Scope], ancestors: Sequence[ast.AST] = ()) -> bool:
        """An assignment of a literal (not state set up inside a function: `idx = 0`, `futures = []`), a
        parameter's literal default (`def __init__(self, ..., head_dim=128)`), a literal keyword argument
        (`GPT(..., head_dim=128)`)."""
        if isinstance(node, ast.keyword):
            return node.arg is not None and is_literal(node.value)
        if ancestors and isinstance(ancestors[-1], ast.arguments) and isinstance(node, ast.expr):
            return is_literal(node)
        if not _assigns_literal(node):
            return False
        return not (self.in_function(scopes) and _is_state_init(node))

    @staticmethod
    def in_function(scopes: Sequence[_Scope]) -> bool:
        inner = next((s.node for s in reversed(scopes) if s.node is not None), None)
        return isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))

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
    for prefix in ("kw:", "env:", "import:", "def:", "handle:"):
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
