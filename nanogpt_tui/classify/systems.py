"""The evidence of systems work: kernel, compile, communication, precision and concurrency names, kernel files."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from pathlib import Path

from nanogpt_tui.classify.syntax import dotted, _target_names, _tokens


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


SYSTEMS_MODULES = ("triton", "flash_attn", "flash_attn_interface", "torch.distributed", "torch._inductor",
                   "torch._dynamo", "torch.cuda", "torch.utils.cpp_extension", "torch.library", "kernels")


# A structural change is systems when at least this share of the names it adds or removes are systems names.
SYSTEMS_SHARE = 1 / 3


# Names that say they hold low-precision data or its scales (`use_mlp_fp8`, `up_proj_f8`, `quantize_weights`).
PRECISION_NAME = re.compile(r"(^|_)(fp8|f8|fp16|bf16|float8|e4m3|e5m2|quantize|dequant|quant|amax)(_|$)", re.IGNORECASE)
KERNEL_NAME = re.compile(r"kernel|triton|cuda", re.IGNORECASE)


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
    if any(p in SYSTEMS_PARTS or PRECISION_NAME.search(p) for p in parts):
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


def _glue(token: str) -> bool:
    if token.startswith(("kw:", "env:", "import:", "def:", "handle:", "op:")):
        return False
    parts = [p for p in token.replace("()", "").split(".") if p]
    if not parts:
        return True
    if len(parts) == 1 and not token.startswith("."):
        return parts[0] in GLUE_NAMES
    return parts[-1] in GLUE_METHODS


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
