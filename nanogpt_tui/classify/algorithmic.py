"""The evidence of an algorithmic change: new model, loss or optimizer computations (tensor math, parameters)."""

from __future__ import annotations

import ast
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


def is_model_class(node: ast.AST) -> bool:
    """A class of the model or the optimizer: it subclasses `nn.Module`, `torch.optim.Optimizer` or
    `torch.autograd.Function` (by the last part of a base's name)."""
    if not isinstance(node, ast.ClassDef):
        return False
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        if name in MODEL_BASES:
            return True
    return False


def computes(node: ast.AST) -> bool:
    """Whether a function or class computes on tensors: it is a model or optimizer class, or its code uses a name
    of `MATH_PARTS` (a helper such as `norm`, `rotary`, `get_bigram_hash`)."""
    if is_model_class(node):
        return True
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for n in ast.walk(node):
        name = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else None
        if name in MATH_PARTS:
            return True
    return False


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
            e.kind = "plumbing"
            e.why = f"the same computation as code the change drops or adds elsewhere (was {e.why})"
