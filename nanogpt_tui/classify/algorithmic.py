"""The evidence of an algorithmic change: new model, loss or optimizer computations (tensor math, parameters)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from typing import Any

# Names whose use is computation on values: activations, normalisations, reductions, products, losses, the
# optimizer's elementwise updates, and the modules and parameters a model is made of. A structural change whose
# changed names hold none of these (nor any arithmetic on values) is plumbing: control flow, bookkeeping,
# reorganised code, which takes the kind of the rest of the change.
MATH_PARTS = frozenset({
    "sigmoid", "tanh", "softmax", "log_softmax", "softplus", "exp", "exp2", "log", "log2", "log1p", "sqrt", "rsqrt",
    "pow", "square", "abs", "sign", "norm", "rms_norm", "layer_norm", "group_norm", "normalize", "relu", "gelu",
    "silu", "leaky_relu", "elu", "dropout", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "outer", "linear",
    "cross_entropy", "nll_loss", "mse_loss", "kl_div", "logsumexp", "mean", "var", "std", "sum", "cumsum", "cumprod",
    "lerp", "lerp_", "addcmul", "addcmul_", "addcdiv", "addcdiv_", "mul", "mul_", "add", "add_", "sub", "sub_", "div",
    "div_", "clamp", "clamp_", "clip", "where", "maximum", "minimum", "tril", "triu", "cos", "sin", "atan", "erf",
    "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm", "Conv1d", "embedding", "scaled_dot_product_attention",
    "attention", "rotary", "softcap", "orthogonalize", "newton_schulz", "zeropower", "polar_express", "bitwise_xor",
    "bitwise_and", "roll", "flip", "gather", "scatter_add", "index_add", "topk", "argmax", "one_hot", "randn",
    "normal_", "uniform_", "zeros_", "orthogonal_", "eye",
})
# Base classes of the code whose structure is the model or the optimizer: a change of control flow there (a layer
# skipped, a branch of the update) changes the computation even with no new arithmetic.
MODEL_BASES = frozenset({"Module", "Optimizer", "Function"})
# The methods of such a class that are its computation (whatever names they call); its other methods that compute
# nothing themselves are bookkeeping (state dicts, parameter groups, buffers).
COMPUTE_METHODS = frozenset({"forward", "step", "backward", "__call__"})
MATH_OPERATORS = frozenset({"op:Mult", "op:Div", "op:Pow", "op:MatMult", "op:Add", "op:Sub", "op:USub", "op:FloorDiv",
                            "op:Mod"})


def is_math_token(token: str) -> bool:
    """Whether a changed name or operator (from `_tokens` / `_operators`) is computation on values."""
    if token in MATH_OPERATORS:
        return True
    if token.startswith(("kw:", "env:", "import:", "def:", "handle:", "op:")):
        return False
    parts = [p for p in token.replace("()", "").split(".") if p]
    return bool(parts) and parts[-1] in MATH_PARTS


def model_base(node: ast.AST) -> str | None:
    """Which of `MODEL_BASES` a class subclasses directly (by the last part of a base's name), or None."""
    if not isinstance(node, ast.ClassDef):
        return None
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        if name in MODEL_BASES:
            return name
    return None


def is_model_class(node: ast.AST) -> bool:
    """A class of the model or the optimizer: it subclasses `nn.Module`, `torch.optim.Optimizer` or
    `torch.autograd.Function` (by the last part of a base's name)."""
    return model_base(node) is not None


def computes(node: ast.AST) -> bool:
    """Whether a function or class computes on tensors: it is a model or optimizer class, or its code uses a name
    of `MATH_PARTS` (a helper such as `norm`, `rotary`, `get_bigram_hash`), other than Python's builtin `sum`, `abs`
    and `pow` (a function adding up sizes computes no tensor)."""
    if is_model_class(node):
        return True
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for n in ast.walk(node):
        name = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else None
        if name in MATH_PARTS and not (isinstance(n, ast.Name) and name in BUILTIN_ARITHMETIC):
            return True
    return False


# Python's builtins of the same names as tensor maths: `sum(p.numel() for p in params)` adds up counts (bucket
# sizes, offsets), `x.sum()` and `torch.sum(x)` reduce a tensor.
BUILTIN_ARITHMETIC = frozenset({"sum", "abs", "pow"})


REIMPLEMENTED = 0.8  # share of a place's new (or dropped) computation found dropped (or new) elsewhere in the change


def discount_reimplemented(evidence: list[Any]) -> None:
    """A place whose computation is the same computation the change drops elsewhere (an optimizer rewritten as one
    zero-copy class, a model flattened out of its blocks) is a re-implementation, not a new algorithm: it becomes
    plumbing, which takes the kind of the rest of the change (its kernels, its communication)."""
    places = [e for e in evidence if e.kind == "algorithmic" and e.why.startswith("computation changed")]
    if not places:
        return
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    nets = []
    for e in evidence:
        old, new = Counter(e.math[0]), Counter(e.math[1])
        gone, came = old - new, new - old
        removed.update(gone)
        added.update(came)
        nets.append((e, gone, came))
    for e, gone, came in nets:
        if e not in places:
            continue
        size = sum(came.values()) + sum(gone.values())
        covered = sum((came & (removed - gone)).values()) + sum((gone & (added - came)).values())
        if size >= 3 and covered >= REIMPLEMENTED * size:
            e.kind, e.nature = "plumbing", ""
            e.why = f"the same computation as code the change drops or adds elsewhere (was {e.why})"


LIBRARY_OPTIMIZERS = ("torch.optim.", "optim.")  # how a record names PyTorch's own optimizers
SHARED_SETTINGS = 2  # keyword settings (other than lr and weight decay) a class must share with the library call


def library_replacements(old_trees: list[ast.AST], new_trees: list[ast.AST]) -> dict[str, str]:
    """Optimizer classes of the change that take the place of one of PyTorch's optimizers it stops using (or that
    PyTorch's takes the place of): the class is new (or dropped), the library optimizer is constructed on one side
    only, and the class is constructed with the same settings (`betas=`, `eps=`) where the library one was. Its
    update is the library's, re-implemented (sharded, fused, overlapped with communication). {class: library name}"""
    def calls(trees: list[ast.AST]) -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
        library: dict[str, set[str]] = {}
        built: dict[str, set[str]] = {}
        classes = set()
        for tree in trees:
            for n in ast.walk(tree):
                if isinstance(n, ast.ClassDef) and any(
                        (b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")) == "Optimizer"
                        for b in n.bases):
                    classes.add(n.name)
                elif isinstance(n, ast.Call):
                    name = _dotted_name(n.func)
                    keywords = {k.arg for k in n.keywords if k.arg} - {"lr", "weight_decay", "params"}
                    if name.startswith(LIBRARY_OPTIMIZERS) and not name.endswith("Optimizer"):
                        library.setdefault(name, set()).update(keywords)
                    elif name:
                        built.setdefault(name, set()).update(keywords)
        return library, built, classes
    lib_old, built_old, classes_old = calls(old_trees)
    lib_new, built_new, classes_new = calls(new_trees)
    out: dict[str, str] = {}
    for classes, others, built, dropped in ((classes_new, classes_old, built_new, set(lib_old) - set(lib_new)),
                                            (classes_old, classes_new, built_old, set(lib_new) - set(lib_old))):
        libraries = lib_old if dropped <= set(lib_old) else lib_new
        for cls in classes - others:
            for name in dropped:
                if len(built.get(cls, set()) & libraries[name]) >= SHARED_SETTINGS:
                    out[cls] = name
    return out


def _dotted_name(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def discount_library_reimplemented(evidence: list[Any], replacements: dict[str, str]) -> None:
    """The update of an optimizer class that re-implements a PyTorch optimizer the change stops using
    (`library_replacements`) is no new computation: it becomes plumbing, so the class counts by what it does beside
    the library's update (its collectives, its sharded state)."""
    for e in evidence:
        cls = e.scope.split(".")[0]
        if cls in replacements and e.kind == "algorithmic":
            e.kind, e.nature = "plumbing", ""
            e.why = f"{replacements[cls]}'s update re-implemented in {cls} (was {e.why})"


# Calls whose arguments are sizes, counts or positions: arithmetic there lays out or indexes values, it computes
# none (`range(start, n, world_size)`, `x.view(B, T, 3 * h, -1)`, `torch.empty(n * d)`).
SIZE_CALLS = frozenset({"range", "len", "int", "next_multiple_of_n", "view", "reshape", "expand", "repeat", "split",
                        "chunk", "narrow", "unflatten", "flatten", "empty", "zeros", "ones", "full", "arange", "tensor",
                        "new_empty", "new_zeros", "new_ones", "new_full", "empty_like", "ceil", "floor", "cdiv",
                        "divmod", "enumerate", "islice"})
# Queries of a value's size: arithmetic on them is arithmetic on counts.
SIZE_QUERIES = frozenset({"size", "shape", "numel", "ndim", "dim", "element_size", "nbytes"})
# Names of counts, sizes and positions (`num_layers`, `world_size`, `chunk_size`, `start_idx`, `pad`).
COUNT_NAME = re.compile(r"^(num|n)_\w+|\w*_(size|sizes|len|count|idx|index|offset|rank)$|^(world_size|rank|pad|idx|"
                        r"offset|start|end|stride)$")


def _call_name(n: ast.Call) -> str:
    return n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id if isinstance(n.func, ast.Name) else ""


def in_index_context(nodes: list[ast.AST], ancestors: list[ast.AST]) -> bool:
    """Whether changed nodes sit in a subscript's slice or a size argument of a call (`.view(..., -1)` ->
    `.view(..., C // h)`), judged from the enclosing nodes up to their statement."""
    inner: list[ast.AST] = list(nodes)
    for anc in reversed(ancestors):
        if isinstance(anc, ast.Subscript) and any(n is m for m in ast.walk(anc.slice) for n in inner):
            return True
        if isinstance(anc, ast.Call) and _call_name(anc) in SIZE_CALLS and any(
                n is m for a in [*anc.args, *(k.value for k in anc.keywords if k.arg not in ("dtype", "device"))]
                for m in ast.walk(a) for n in inner):
            return True
        if isinstance(anc, ast.stmt):
            return False
        inner = [anc]
    return False


def index_arithmetic_only(nodes: list[ast.AST], ancestors: list[ast.AST] = ()) -> bool:
    """Whether every piece of arithmetic in some code is on positions and sizes: inside a subscript
    (`self.scalars[2 * n: 3 * n]`), in the size arguments of a call (`range`, `.view`, `torch.empty`), on size
    queries and integer literals (`p.size(-2) // 4`, `len(params) - 1`), lists joined or repeated, or a counter
    stepped (`idx += size`).
    Such code shards, pads, groups and slices; it is bookkeeping, not a new computation."""
    found = False

    def size_leaf(n: ast.AST) -> bool:
        if isinstance(n, ast.Constant):
            return isinstance(n.value, int) and not isinstance(n.value, bool)
        if isinstance(n, ast.Call):
            return _call_name(n) in SIZE_QUERIES or _call_name(n) in SIZE_CALLS
        if isinstance(n, ast.Attribute):
            return n.attr in SIZE_QUERIES or bool(COUNT_NAME.match(n.attr))
        if isinstance(n, ast.Name):
            return bool(COUNT_NAME.match(n.id))
        if isinstance(n, ast.Subscript):
            return size_leaf(n.value)
        if isinstance(n, ast.BinOp):
            return size_leaf(n.left) and size_leaf(n.right)
        if isinstance(n, ast.UnaryOp):
            return size_leaf(n.operand)
        return False

    def visit(n: ast.AST, indexing: bool) -> bool:
        nonlocal found
        if isinstance(n, ast.BinOp):
            found = True
            # Lists joined or repeated (`[None] * (n - 6) + [ve[0], ve[1]]`) lay out slots.
            listed = isinstance(n.left, (ast.List, ast.Tuple)) or isinstance(n.right, (ast.List, ast.Tuple))
            return indexing or size_leaf(n) or listed and all(visit(c, indexing) for c in (n.left, n.right))
        if isinstance(n, ast.AugAssign):
            found = True
            # A counter or offset stepped (`idx += size`, `pos -= 1`).
            stepped = isinstance(n.op, (ast.Add, ast.Sub)) and (isinstance(n.value, ast.Name) or size_leaf(n.value))
            if not (indexing or stepped):
                return False
        if isinstance(n, ast.Subscript):
            return visit(n.value, indexing) and visit(n.slice, True)
        if isinstance(n, ast.Call):
            sizes = _call_name(n) in SIZE_CALLS
            return visit(n.func, indexing) and all(visit(a, indexing or sizes) for a in n.args) and all(
                visit(k.value, indexing or (sizes and k.arg not in ("dtype", "device"))) for k in n.keywords)
        return all(visit(c, indexing) for c in ast.iter_child_nodes(n))

    indexing = in_index_context(nodes, list(ancestors))
    return all(visit(n, indexing) for n in nodes) and found


# Containers a model's repeated parts are built into: the count they are built with is the model's depth.
MODULE_CONTAINERS = frozenset({"ModuleList", "Sequential", "ModuleDict", "ParameterList"})


def depth_settings(tree: ast.AST) -> tuple[frozenset[str], frozenset[int]]:
    """What sets how many modules a model is built of: the names (last part: `args.num_layers` -> `num_layers`) and
    the ids of the literals in the `range(...)` of a comprehension that fills a module container
    (`nn.ModuleList([Block(dim) for _ in range(num_layers)])`). A change to that count (`num_layers = 2 -> 1`, three
    value embeddings instead of two) changes the model's structure, not a tuned value."""
    names: set[str] = set()
    literals: set[int] = set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and _call_name(call) in MODULE_CONTAINERS):
            continue
        for arg in call.args:
            arg = arg.value if isinstance(arg, ast.Starred) else arg
            if not isinstance(arg, (ast.ListComp, ast.GeneratorExp, ast.DictComp)):
                continue
            for comp in arg.generators:
                counts = comp.iter
                if not (isinstance(counts, ast.Call) and _call_name(counts) == "range"):
                    continue
                inside = [m for a in counts.args for m in ast.walk(a)]
                bases = {id(m.value) for m in inside if isinstance(m, ast.Attribute)} | {
                    id(m.func) for m in inside if isinstance(m, ast.Call)}  # `len` of `range(len(x))` sets nothing
                for n in inside:
                    if isinstance(n, ast.Name) and id(n) not in bases:
                        names.add(n.id)
                    elif isinstance(n, ast.Attribute):
                        names.add(n.attr)
                    elif isinstance(n, ast.Constant):
                        literals.add(id(n))
    return frozenset(names), frozenset(literals)
