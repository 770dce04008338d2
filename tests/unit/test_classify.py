"""The change classifier on realistic pairs of each kind: edits of a speedrun-style record the way agents and human
record-setters make them, a mixed change, and changes that change nothing."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest

from nanogpt_tui.classify import (
    ALGORITHMIC,
    HYPERPARAMETER,
    KNOB_CLASS,
    NEUTRAL,
    NONE,
    SYSTEMS,
    classify_dirs,
    classify_sources,
    code_distance,
    nearest,
    systems_names,
)
from nanogpt_tui.cli import main
from nanogpt_tui.code_edits import set_hyperparameters

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"
ANCHOR = (FIXTURES / "anchor" / "train_gpt.py").read_text()
RUN_SH = (FIXTURES / "anchor" / "run.sh").read_text()
KERNELS = (FIXTURES / "refactor" / "triton_kernels.py").read_text()
ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "human_baselines" / "smoke" / "train_gpt.py").read_text()


def sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def classify(new: str, old: str = ANCHOR, **extra: str):
    return classify_sources({"train_gpt.py": old, "run.sh": RUN_SH}, {"train_gpt.py": new, "run.sh": RUN_SH, **extra})


# ------------------------------------------------------------------------------------------------ hyperparameter

HYPERPARAMETER_EDITS = {
    "step count": ("num_iterations: int = 1750", "num_iterations: int = 1700"),
    "learning rate and betas": ("lr=0.008, betas=(0.8, 0.95)", "lr=0.01, betas=(0.85, 0.95)"),
    "cooldown fraction": ("cooldown_frac: float = 0.45", "cooldown_frac: float = 0.6"),
    "batch size expression": ("train_batch_size: int = 8 * 48 * 1024", "train_batch_size: int = 8 * 64 * 1024"),
    "model size": ("num_heads=6, model_dim=768", "num_heads=8, model_dim=1024"),
    "momentum warm-up length": ("frac = min(step / 300, 1)", "frac = min(step / 500, 1)"),
    "Newton-Schulz coefficients": ("a, b, c = (3.4445, -4.7750, 2.0315)", "a, b, c = (3.3, -4.5, 2.1)"),
    "schedule shape": ("return w * 1.0 + (1 - w) * 0.1", "return max(w, 0.05) ** 2"),
}


@pytest.mark.parametrize("name", sorted(HYPERPARAMETER_EDITS))
def test_literal_changes_are_hyperparameter_tuning(name):
    old, new = HYPERPARAMETER_EDITS[name]
    result = classify(sub(ANCHOR, old, new))
    assert result.kind == HYPERPARAMETER, result.summary()
    assert not result.mixed
    assert result.evidence and all(e.kind == HYPERPARAMETER for e in result.evidence)


def test_hyperparameter_evidence_names_the_node_and_values():
    result = classify(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"))
    (e,) = result.evidence
    assert (e.file, e.scope, e.change, e.before, e.after) == (
        "train_gpt.py", "Hyperparameters.num_iterations", "literal", "1750", "1700")
    assert e.nodes == ["Constant"] and e.line == ANCHOR.splitlines().index("    num_iterations: int = 1750") + 1
    assert "literal 1750 -> 1700" in e.text()


def test_a_new_knob_read_where_a_literal_was_is_tuning():
    knob = "    cooldown_frac: float = 0.45\n    adam_lr: float = 0.01\n"
    new = sub(sub(ANCHOR, "    cooldown_frac: float = 0.45\n", knob),
              "lr=0.008,", "lr=args.adam_lr,")
    result = classify(new)
    assert result.kind == HYPERPARAMETER
    assert {e.why for e in result.evidence} == {"a knob added", "a value now read from a knob"}


def test_the_scripted_agents_step_change_on_the_smoke_record():
    result = classify_sources({"train_gpt.py": SMOKE}, {"train_gpt.py": sub(
        SMOKE, "    num_iterations = 200  #", "    num_iterations = 150  #")})
    assert result.kind == HYPERPARAMETER
    assert result.evidence[0].scope == "Hyperparameters.num_iterations"


def test_the_demos_one_block_change_is_architecture_not_tuning():
    # The demo's plan sets the Hyperparameters default `num_layers` (2 -> 1): that count is how many blocks the model's
    # ModuleList is built of, so the change is to the model's structure.
    plan = tomllib.loads((ROOT / "nanogpt_tui" / "agents" / "harnesses" / "scripted" / "demo.toml").read_text())
    (one_block,) = [e for e in plan["experiment"] if e["name"] == "one-block"]
    result = classify_sources({"train_gpt.py": SMOKE}, {"train_gpt.py": set_hyperparameters(SMOKE, one_block["set"])[0]})
    assert result.kind == ALGORITHMIC, result.summary()
    (e,) = result.evidence
    assert e.scope == "Hyperparameters.num_layers" and "depth" in e.why and "num_layers" in e.why


def test_a_layer_count_sets_the_models_depth_wherever_it_is_written():
    as_keyword = classify(sub(ANCHOR, "num_layers=12, num_heads=6", "num_layers=11, num_heads=6"))
    assert as_keyword.kind == ALGORITHMIC and "num_layers" in as_keyword.evidence[0].why
    in_range = ANCHOR.replace("for _ in range(num_layers)", "for _ in range(12)")
    as_literal = classify(in_range.replace("for _ in range(12)", "for _ in range(11)"), old=in_range)
    assert as_literal.kind == ALGORITHMIC and "module container" in as_literal.evidence[0].why
    # A count that sets no module container stays a tuned value: the loop over warm-up steps, the model's width.
    assert classify(sub(ANCHOR, "num_heads=6, model_dim=768", "num_heads=6, model_dim=512")).kind == HYPERPARAMETER


# ------------------------------------------------------------------------------------------------ algorithmic

ALGORITHMIC_EDITS = {
    "activation (model)": [("return self.proj(F.relu(self.fc(x)).square())", "return self.proj(F.gelu(self.fc(x)))")],
    "z-loss (loss)": [('        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets, reduction="sum" if '
                       'self.training else "mean")',
                       '        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets, reduction="sum" if '
                       'self.training else "mean")\n'
                       '        return loss + 1e-4 * logits.logsumexp(-1).square().mean()')],
    "smear gate (model)": [
        ("        self.lm_head = nn.Linear(model_dim, vocab_size, bias=False)\n",
         "        self.lm_head = nn.Linear(model_dim, vocab_size, bias=False)\n"
         "        self.smear_gate = nn.Linear(12, 1, bias=False)\n"),
        ("        x = norm(self.embed(inputs)[None])\n",
         "        x = self.embed(inputs)[None]\n        gate = torch.sigmoid(self.smear_gate(x[:, 1:, :12]))\n"
         "        x = norm(torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1))\n")],
    "momentum without Nesterov (optimizer)": [
        ('update = zeropower_via_newtonschulz5(p.grad.lerp(buf, group["momentum"]))',
         "update = zeropower_via_newtonschulz5(buf)")],
    "align batches to documents (data)": [
        ("        pos += batch_size\n",
         "        pos += batch_size\n"
         "        while pos < len(tokens) and tokens[pos] != 50256:\n            pos += 1\n")],
    "drop the first block's attention (model)": [
        ("        x = x + self.attn(norm(x))\n        return x + self.mlp(norm(x))",
         "        if self.attn is not None:\n            x = x + self.attn(norm(x))\n"
         "        return x + self.mlp(norm(x))")],
}


@pytest.mark.parametrize("name", sorted(ALGORITHMIC_EDITS))
def test_structural_changes_to_model_optimizer_data_or_loss_are_algorithmic(name):
    new = ANCHOR
    for old, replacement in ALGORITHMIC_EDITS[name]:
        new = sub(new, old, replacement)
    result = classify(new)
    assert result.kind == ALGORITHMIC, result.summary()
    # Control flow with no arithmetic of its own (a loop over tokens) is plumbing: it takes the kind of the rest.
    assert all(e.kind in (ALGORITHMIC, "neutral", "plumbing") for e in result.evidence), \
        [e.text() for e in result.evidence]


def test_algorithmic_evidence_says_which_nodes_changed():
    result = classify(sub(ANCHOR, *ALGORITHMIC_EDITS["activation (model)"][0]))
    (e,) = result.evidence
    assert e.scope == "MLP.forward" and e.change == "structure" and e.nodes == ["Call"]
    assert (e.before, e.after) == ("F.relu(self.fc(x)).square()", "F.gelu(self.fc(x))")
    assert "F.gelu" in e.why and "F.relu" in e.why


def test_the_scripted_agents_drop_attention_on_the_smoke_record():
    old = ("        self.attn = CausalSelfAttention(dim, num_heads, max_seq_len)\n        self.mlp = MLP(dim)\n\n"
           "    def forward(self, x: Tensor) -> Tensor:\n        x = x + self.attn(norm(x))\n"
           "        return x + self.mlp(norm(x))\n")
    new = ("        # Attention has nothing to find on an order-1 chain.\n        self.mlp = MLP(dim)\n\n"
           "    def forward(self, x: Tensor) -> Tensor:\n        return x + self.mlp(norm(x))\n")
    result = classify_sources({"train_gpt.py": SMOKE}, {"train_gpt.py": sub(SMOKE, old, new)})
    assert result.kind == ALGORITHMIC
    assert {e.change for e in result.evidence} == {"removed"}
    assert {e.scope for e in result.evidence} == {"Block.__init__", "Block.forward"}


# ------------------------------------------------------------------------------------------------ systems

SYSTEMS_EDITS = {
    "asynchronous all-reduce (communication)": [
        ("                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)\n",
         "                handle = dist.all_reduce(p.grad, op=dist.ReduceOp.AVG, async_op=True)\n"
         "                handle.wait()\n")],
    "logits in bfloat16 (precision)": [("logits = 30 * torch.sigmoid(self.lm_head(norm(x)).float() / 7.5)",
                                        "logits = 30 * torch.sigmoid(self.lm_head(norm(x)) / 7.5)")],
    "compile flag (compile)": [("model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True)",
                                "model: nn.Module = torch.compile(model, dynamic=True, fullgraph=True)")],
    "inductor setting (compile)": [("dynamo.config.recompile_limit = 64", "dynamo.config.recompile_limit = 128")],
    "reduce-scatter instead of all-reduce (communication)": [
        ("dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)",
         "dist.reduce_scatter_tensor(p.grad, p.grad, op=dist.ReduceOp.AVG)")],
    "pinned host buffer (data plumbing)": [
        ("tokens = torch.empty(num_tokens, dtype=torch.uint16, pin_memory=True)",
         "tokens = torch.empty(num_tokens, dtype=torch.uint16, pin_memory=False)")],
}


@pytest.mark.parametrize("name", sorted(SYSTEMS_EDITS))
def test_kernels_compile_communication_and_precision_are_systems(name):
    new = ANCHOR
    for old, replacement in SYSTEMS_EDITS[name]:
        new = sub(new, old, replacement)
    result = classify(new)
    assert result.kind == SYSTEMS, [e.text() for e in result.evidence]


def test_a_triton_kernel_file_and_its_call_site_are_systems():
    new = sub(sub(ANCHOR, "        return self.proj(F.relu(self.fc(x)).square())",
                  "        return self.proj(relu_square(self.fc(x)))"),
              "import torch\n", "import torch\nfrom triton_kernels import relu_square\n")
    result = classify_sources({"train_gpt.py": ANCHOR}, {"train_gpt.py": new, "triton_kernels.py": KERNELS})
    assert result.kind == SYSTEMS and not result.mixed
    changes = {(e.file, e.change) for e in result.evidence}
    assert ("triton_kernels.py", "file-added") in changes and ("train_gpt.py", "structure") in changes
    assert any("relu_square" in e.why for e in result.evidence if e.file == "train_gpt.py")


def test_run_sh_changes_are_launch_plumbing_unless_only_numbers_changed():
    launch = classify_sources({"run.sh": RUN_SH}, {"run.sh": RUN_SH + "export NCCL_ALGO=Tree\n"})
    assert launch.kind == SYSTEMS and launch.evidence[0].change == "added"
    numbers = classify_sources({"run.sh": RUN_SH}, {"run.sh": RUN_SH.replace("nproc_per_node=8", "nproc_per_node=4")})
    assert numbers.kind == HYPERPARAMETER and numbers.evidence[0].nodes == ["line"]


# ------------------------------------------------------------------------------------------------ mixed and none

def test_a_change_is_labelled_by_the_kind_that_holds_most_of_its_weight():
    # A new activation (one line of the model's computation, weighed double) with a retuned step count (a literal
    # weighs half a line).
    new = sub(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"),
              *ALGORITHMIC_EDITS["activation (model)"][0])
    result = classify(new)
    assert (result.kind, result.mixed, result.label) == (ALGORITHMIC, False, ALGORITHMIC)
    assert result.parts == {ALGORITHMIC: 1, HYPERPARAMETER: 1}
    assert result.shares == pytest.approx({ALGORITHMIC: 0.8, HYPERPARAMETER: 0.2, SYSTEMS: 0.0})
    assert result.summary() == "algorithmic (80%; hyperparameter 20%)"
    assert result.evidence[0].nature == "computation" and result.evidence[0].weighed == 2 * result.evidence[0].weight
    # The evidence explaining the label comes first.
    assert result.evidence[0].kind == ALGORITHMIC and result.evidence[1].kind == HYPERPARAMETER


def test_a_change_where_no_kind_holds_most_of_the_weight_is_mixed():
    # One line of new computation (weighed 2) against four retuned constants (half a line each).
    new = sub(ANCHOR, *ALGORITHMIC_EDITS["activation (model)"][0])
    for old, replacement in (("num_iterations: int = 1750", "num_iterations: int = 1700"),
                             ("cooldown_frac: float = 0.45", "cooldown_frac: float = 0.5"),
                             ("val_loss_every: int = 125", "val_loss_every: int = 250"),
                             ("train_batch_size: int = 8 * 48 * 1024", "train_batch_size: int = 8 * 64 * 1024")):
        new = sub(new, old, replacement)
    result = classify(new)
    assert (result.kind, result.mixed, result.label) == (ALGORITHMIC, True, "mixed"), result.summary()
    assert result.shares[ALGORITHMIC] == pytest.approx(0.5) and result.shares[HYPERPARAMETER] == pytest.approx(0.5)
    assert result.summary() == "mixed (algorithmic 50%, hyperparameter 50%)"
    assert result.to_dict()["label"] == "mixed"


def test_a_kind_needs_six_tenths_of_the_weight_like_the_labels():
    # One line of new computation (weighed 2) against three retuned constants (half a line each): algorithmic
    # holds 2 / 3.5 = 57%, most of the weight but under the labels' 0.6 (human_baselines/timeline_labels.tsv).
    new = sub(ANCHOR, *ALGORITHMIC_EDITS["activation (model)"][0])
    for old, replacement in (("num_iterations: int = 1750", "num_iterations: int = 1700"),
                             ("cooldown_frac: float = 0.45", "cooldown_frac: float = 0.5"),
                             ("val_loss_every: int = 125", "val_loss_every: int = 250")):
        new = sub(new, old, replacement)
    result = classify(new)
    assert result.shares[ALGORITHMIC] == pytest.approx(2 / 3.5)
    assert (result.kind, result.label) == (ALGORITHMIC, "mixed"), result.summary()
    # Two constants: 2 / 3 = 67% is enough.
    two = sub(sub(ANCHOR, *ALGORITHMIC_EDITS["activation (model)"][0]), "num_iterations: int = 1750",
              "num_iterations: int = 1700")
    two = sub(two, "cooldown_frac: float = 0.45", "cooldown_frac: float = 0.5")
    assert classify(two).label == ALGORITHMIC, classify(two).summary()


def test_systems_plus_retuned_constants_is_systems():
    new = sub(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"),
              *SYSTEMS_EDITS["logits in bfloat16 (precision)"][0])
    result = classify(new)
    assert (result.kind, result.mixed) == (SYSTEMS, False)
    assert result.to_dict()["parts"] == {HYPERPARAMETER: 1, ALGORITHMIC: 0, SYSTEMS: 1}


def test_all_three_kinds_together_is_algorithmic():
    new = ANCHOR
    for old, replacement in (HYPERPARAMETER_EDITS["learning rate and betas"], *ALGORITHMIC_EDITS["z-loss (loss)"],
                             *SYSTEMS_EDITS["asynchronous all-reduce (communication)"]):
        new = sub(new, old, replacement)
    result = classify(new)
    assert result.kind == ALGORITHMIC
    assert all(result.parts.get(k) for k in (HYPERPARAMETER, ALGORITHMIC, SYSTEMS))


@pytest.mark.parametrize("edit", [
    ("# The model\n", "# The model (unchanged)\n"),
    ('print0(f"peak memory allocated:', 'print0(f"peak memory:'),
    ("def norm(x: Tensor) -> Tensor:\n    return F.rms_norm(x, (x.size(-1),))\n",
     'def norm(x: Tensor) -> Tensor:\n    """RMS norm over the last axis."""\n'
     '    return F.rms_norm(x, (x.size(-1),))\n'),
    ("lr=0.008, betas=(0.8, 0.95), eps=1e-10", "lr=0.008,\n                        betas=(0.8, 0.95), eps=1e-10"),
    ("train_batch_size: int = 8 * 48 * 1024", "train_batch_size: int = 393_216"),
])
def test_changes_that_run_the_same_code_are_none(edit):
    result = classify(sub(ANCHOR, *edit))
    assert result.kind == NONE, [e.text() for e in result.evidence]


def test_moving_a_function_is_no_change():
    block = "def norm(x: Tensor) -> Tensor:\n    return F.rms_norm(x, (x.size(-1),))\n\n\n"
    moved = ANCHOR.replace(block, "") + "\n\n" + block
    assert classify(moved).kind == NONE


def test_python_that_does_not_parse_is_compared_as_text():
    broken = ANCHOR.replace("num_iterations: int = 1750", "num_iterations: int = 1700") + "\ndef broken(:\n"
    result = classify(broken)
    assert result.kind == ALGORITHMIC
    assert any("does not parse" in e.why for e in result.evidence)


# ------------------------------------------------------------------------------------------------ triton record
# Since the FA3 record, a record is one train_gpt.py that imports triton for a kernel or two and holds the model, the
# optimizers, the data loader, the schedules and the training loop as well. This one is written for these tests, in
# that style: one @triton.jit kernel and its launcher, Muon and a distributed Adam, a GPT, a document-aligned loader,
# Hyperparameters, a window schedule.

TRITON_RECORD = '''import glob
import os
import time
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor, nn

# -----------------------------------------------------------------------------
# A Triton kernel: rows scaled by a gain, used on the attention output


@triton.jit
def row_gain_kernel(x_ptr, g_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0)
    g = tl.load(g_ptr + cols, mask=mask, other=1.0)
    tl.store(out_ptr + row * n_cols + cols, x * g, mask=mask)


def row_gain(x: Tensor, g: Tensor) -> Tensor:
    out = torch.empty_like(x)
    n_cols = x.size(-1)
    row_gain_kernel[(x.numel() // n_cols,)](x, g, out, n_cols, BLOCK=triton.next_power_of_2(n_cols))
    return out


# -----------------------------------------------------------------------------
# Muon


def newton_schulz(G: Tensor, steps: int = 5) -> Tensor:
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.bfloat16()
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.02, momentum=0.95):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = newton_schulz(p.grad.lerp(buf, group["momentum"]))
                p.add_(update.view_as(p), alpha=-group["lr"] * max(1, p.size(-2) / p.size(-1)) ** 0.5)


class DistAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=0.008, betas=(0.8, 0.95), eps=1e-10):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                state["exp_avg"].lerp_(p.grad, 1 - beta1)
                state["exp_avg_sq"].lerp_(p.grad.square(), 1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2 ** state["step"])).sqrt() + group["eps"]
                p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1 ** state["step"]))


# -----------------------------------------------------------------------------
# The model


def norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.to(dtype=torch.float32).chunk(2, dim=-1)
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat((y1, y2), 3).type_as(x)


@dataclass
class AttnArgs:
    cos: Tensor
    sin: Tensor
    window: int


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim=128):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim, bias=False)
        self.proj = nn.Linear(num_heads * head_dim, dim, bias=False)
        self.gain = nn.Parameter(torch.ones(dim))
        self.attn_scale = 0.12

    def forward(self, x: Tensor, attn_args: AttnArgs) -> Tensor:
        B, T = x.size(0), x.size(1)
        q, k, v = self.qkv(x).view(B, T, 3 * self.num_heads, self.head_dim).chunk(3, dim=-2)
        q, k = norm(q), norm(k)
        q, k = rotary(q, attn_args.cos, attn_args.sin), rotary(k, attn_args.cos, attn_args.sin)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, scale=self.attn_scale)
        y = y.transpose(1, 2).contiguous().view(B, T, -1)
        return row_gain(self.proj(y), self.gain)


class MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim, bias=False)
        self.proj = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = CausalSelfAttention(dim, num_heads)
        self.mlp = MLP(dim)

    def forward(self, x: Tensor, attn_args: AttnArgs) -> Tensor:
        x = x + self.attn(norm(x), attn_args)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, num_layers: int, num_heads: int, model_dim: int, max_seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, model_dim)
        self.blocks = nn.ModuleList([Block(model_dim, num_heads) for _ in range(num_layers)])
        self.lm_head = nn.Linear(model_dim, vocab_size, bias=False)
        theta = torch.outer(torch.arange(max_seq_len), (1 / 1024) ** torch.linspace(0, 1, 32))
        self.cos, self.sin = theta.cos()[None, :, None, :], theta.sin()[None, :, None, :]

    def forward(self, idx: Tensor, targets: Tensor, window: int) -> Tensor:
        T = idx.size(-1)
        attn_args = AttnArgs(cos=self.cos[:, :T], sin=self.sin[:, :T], window=window)
        x = norm(self.embed(idx)[None])
        for block in self.blocks:
            x = block(x, attn_args)
        logits = 30 * torch.sigmoid(self.lm_head(norm(x)).float() / 7.5)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets)


# -----------------------------------------------------------------------------
# Data

BOS_ID = 50256


def _load_data_shard(file: str) -> Tensor:
    header = torch.from_file(file, False, 256, dtype=torch.int32)
    num_tokens = int(header[2])
    tokens = torch.empty(num_tokens, dtype=torch.uint16, pin_memory=True)
    with open(file, "rb", buffering=0) as f:
        f.seek(256 * 4)
        f.readinto(tokens.numpy())
    return tokens


class DocumentFinder:
    # positions of the documents' first tokens in a shard, so that batches start at a document
    def __init__(self, tokens: Tensor):
        self.bos_idx = (tokens == BOS_ID).nonzero(as_tuple=True)[0].cpu().numpy()
        self.i = 0

    def next_start(self, pos: int) -> int:
        while self.i < len(self.bos_idx) and self.bos_idx[self.i] < pos:
            self.i += 1
        return int(self.bos_idx[self.i]) if self.i < len(self.bos_idx) else pos


def data_generator(files: list[str], batch_size: int, rank: int, world_size: int):
    file_iter = iter(files)
    tokens = _load_data_shard(next(file_iter))
    finder = DocumentFinder(tokens)
    pos = 0
    while True:
        pos = finder.next_start(pos)
        if pos + batch_size + 1 >= len(tokens):
            tokens = _load_data_shard(next(file_iter))
            finder = DocumentFinder(tokens)
            pos = 0
            continue
        local = batch_size // world_size
        buf = tokens[pos + rank * local:][:local + 1]
        pos += batch_size
        yield (buf[:-1].to(device="cuda", dtype=torch.int32, non_blocking=True),
               buf[1:].to(device="cuda", dtype=torch.int64, non_blocking=True))


# -----------------------------------------------------------------------------
# Hyperparameters, schedules, training


@dataclass
class Hyperparameters:
    train_files: str = "data/fineweb10B/fineweb_train_*.bin"
    train_seq_len: int = 48 * 1024
    num_iterations: int = 1750
    cooldown_frac: float = 0.45
    window_schedule: tuple = (3, 7, 11)
    run_id: str = str(uuid.uuid4())


args = Hyperparameters()


def get_lr(step: int) -> float:
    x = step / args.num_iterations
    if x < 1 - args.cooldown_frac:
        return 1.0
    w = (1 - x) / args.cooldown_frac
    return w * 1.0 + (1 - w) * 0.1


def get_ws(step: int) -> int:
    idx = min(int(step / args.num_iterations * len(args.window_schedule)), len(args.window_schedule) - 1)
    return args.window_schedule[idx] * 128


rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
dist.init_process_group(backend="nccl")
model = GPT(vocab_size=50304, num_layers=12, num_heads=6, model_dim=768, max_seq_len=args.train_seq_len).cuda()
for m in model.modules():
    if isinstance(m, nn.Embedding):
        m.bfloat16()
optimizers = [DistAdam([model.embed.weight, model.lm_head.weight]),
              Muon([p for p in model.blocks.parameters() if p.ndim >= 2])]
model = torch.compile(model, dynamic=False)
train_loader = data_generator(sorted(glob.glob(args.train_files)), args.train_seq_len, rank, world_size)
t0 = time.perf_counter()
for step in range(args.num_iterations + 1):
    inputs, targets = next(train_loader)
    model(inputs, targets, get_ws(step)).backward()
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * get_lr(step)
        opt.step()
    model.zero_grad(set_to_none=True)
print(f"{args.run_id}: {time.perf_counter() - t0:.1f}s")
'''


def classify_record(new: str, old: str = TRITON_RECORD, **extra: str):
    return classify_sources({"train_gpt.py": old}, {"train_gpt.py": new, **extra})


def not_by_the_whole_file(result) -> bool:
    """No evidence item is systems merely because train_gpt.py imports triton."""
    return not any("train_gpt.py holds kernels" in e.why for e in result.evidence)


def record_edit(*pairs: tuple[str, str]) -> str:
    new = TRITON_RECORD
    for old, replacement in pairs:
        new = sub(new, old, replacement)
    return new


MODEL_EDITS_IN_A_TRITON_FILE = {
    "activation (model)": [("return self.proj(F.relu(self.fc(x)).square())", "return self.proj(F.gelu(self.fc(x)))")],
    # `norm` is an ordinary function of the file, not a kernel, though the file imports triton
    "QK norm removed (model)": [("        q, k = norm(q), norm(k)\n", "")],
    # the window schedule `get_ws` is no kernel either
    "window read once per step (training loop)": [
        ("    model(inputs, targets, get_ws(step)).backward()\n",
         "    ws = get_ws(step)\n    model(inputs, targets, ws).backward()\n")],
}


@pytest.mark.parametrize("name", sorted(MODEL_EDITS_IN_A_TRITON_FILE))
def test_importing_triton_does_not_make_the_whole_file_kernels(name):
    result = classify_record(record_edit(*MODEL_EDITS_IN_A_TRITON_FILE[name]))
    assert result.kind == ALGORITHMIC, [e.text() for e in result.evidence]
    assert not result.parts.get(SYSTEMS) and not_by_the_whole_file(result), [e.text() for e in result.evidence]


def test_a_change_inside_the_triton_kernel_is_still_systems():
    result = classify_record(record_edit(("x * g, mask=mask)", "x * tl.sigmoid(g), mask=mask)")))
    assert result.kind == SYSTEMS and not result.mixed
    (e,) = result.evidence
    assert e.scope == "row_gain_kernel" and e.why == "inside @triton.jit row_gain_kernel"


FUSED_OPS = '''import torch
import triton
import triton.language as tl


@triton.jit
def _softcap_kernel(x_ptr, out_ptr, n, cap, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, cap * tl.sigmoid(x / (cap / 4)), mask=mask)


def softcap(x: torch.Tensor, cap: float = 30.0) -> torch.Tensor:
    out = torch.empty_like(x)
    n = x.numel()
    _softcap_kernel[(triton.cdiv(n, 1024),)](x, out, n, cap, BLOCK=1024)
    return out
'''


def test_a_file_that_is_mostly_kernels_holds_kernels_whatever_its_name():
    old = {"train_gpt.py": TRITON_RECORD, "fused_ops.py": FUSED_OPS}
    new = {"train_gpt.py": TRITON_RECORD, "fused_ops.py": FUSED_OPS.replace("BLOCK=1024)", "BLOCK=2048)")}
    result = classify_sources(old, new)
    assert result.kind == SYSTEMS
    assert result.evidence[0].why == "fused_ops.py holds kernels"


def test_systems_names_are_kernels_their_launchers_custom_ops_and_kernel_imports():
    custom_op = ('@torch.library.custom_op("nanogpt::mm", mutates_args=())\n'
                 "def mm_op(x: Tensor, w: Tensor) -> Tensor:\n    return x @ w.T\n\n\n"
                 "@mm_op.register_fake\ndef _(x: Tensor, w: Tensor):\n    return x @ w.T\n")
    tree = ast.parse(TRITON_RECORD.replace("# Muon\n", "# Muon\n" + custom_op, 1) +
                     "from triton_kernels import relu_square\n")
    names = systems_names([("train_gpt.py", tree)])
    assert {"row_gain_kernel", "row_gain", "mm_op", "relu_square"} <= names
    assert not names & {"step", "get_ws", "get_lr", "norm", "rotary", "newton_schulz", "Muon", "GPT", "_",
                        "data_generator", "train_gpt"}


# Muon.step as TRITON_RECORD has it (the edit below replaces exactly this text).
MUON_STEP = TRITON_RECORD[TRITON_RECORD.index("    @torch.no_grad()\n    def step(self):\n        for group"):
                          TRITON_RECORD.index("\n\n\nclass DistAdam")] + "\n"
SHARDED_MUON_STEP = '''    @torch.no_grad()
    def step(self):
        rank, world_size = dist.get_rank(), dist.get_world_size()
        pending = []
        for group in self.param_groups:
            params = group["params"]
            padded = params + [torch.empty_like(params[-1])] * (-len(params) % world_size)
            for base in range(0, len(padded), world_size):
                chunk = padded[base:base + world_size]
                grads = torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in chunk])
                shard = torch.empty_like(grads[0])
                future = dist.reduce_scatter_tensor(shard, grads, op=dist.ReduceOp.AVG, async_op=True).get_future()
                pending.append((group, chunk, shard, future))
        gathers = []
        for group, chunk, shard, future in pending:
            future.wait()
            p = chunk[rank]
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(shard, 1 - group["momentum"])
            update = newton_schulz(shard.lerp(buf, group["momentum"]))
            p.add_(update.view_as(p), alpha=-group["lr"] * max(1, p.size(-2) / p.size(-1)) ** 0.5)
            stacked = torch.empty((world_size, *p.shape), dtype=p.dtype, device=p.device)
            gather = dist.all_gather_into_tensor(stacked, p[None].contiguous(), async_op=True).get_future()
            gathers.append((chunk, stacked, gather))
        for chunk, stacked, gather in gathers:
            gather.wait()
            for q, new in zip(chunk, stacked.unbind(0)):
                q.copy_(new)
'''


def test_a_rewritten_optimizer_step_with_sharded_asynchronous_collectives_is_systems():
    # Many new locals (padded, chunk, shard, stacked, ...) and the same momentum math: judged by what it calls.
    result = classify_record(record_edit((MUON_STEP, SHARDED_MUON_STEP)))
    assert result.kind == SYSTEMS and not result.mixed, [e.text() for e in result.evidence]
    assert not_by_the_whole_file(result)
    assert {e.scope for e in result.evidence} == {"Muon.step"}
    # `pending = []`, `gathers = []` are state, not knobs
    assert not any("knob" in e.why for e in result.evidence)


SHARD_PREFETCHER = '''class ShardPrefetcher:
    # reads the next shard on a background thread while the current one is trained on
    def __init__(self, files, depth: int = 1):
        self.queue = queue.Queue(maxsize=depth)
        self.worker = threading.Thread(target=self._run, args=(files,), daemon=True)
        self.worker.start()

    def _run(self, files):
        for file in files:
            self.queue.put(_load_data_shard(file))

    def next_shard(self) -> Tensor:
        return self.queue.get()


def data_generator('''


def test_a_threaded_shard_prefetcher_and_its_use_are_systems():
    new = record_edit(("import os\n", "import os\nimport queue\nimport threading\n"),
                      ("\n\ndef data_generator(", "\n\n" + SHARD_PREFETCHER),
                      ("    file_iter = iter(files)\n    tokens = _load_data_shard(next(file_iter))\n",
                       "    prefetcher = ShardPrefetcher(files)\n    tokens = prefetcher.next_shard()\n"),
                      ("            tokens = _load_data_shard(next(file_iter))\n",
                       "            tokens = prefetcher.next_shard()\n"))
    result = classify_record(new)
    assert result.kind == SYSTEMS and not result.mixed, [e.text() for e in result.evidence]
    by_scope = {(e.scope, e.after.split(":")[0] if e.after else None): e.kind for e in result.evidence}
    # The class is judged method by method: each of them works the thread and the queue.
    assert {k for (scope, _), k in by_scope.items() if scope.startswith("ShardPrefetcher")} == {SYSTEMS}
    assert by_scope[("<module>", "import threading")] == SYSTEMS
    assert any(e.scope == "data_generator" and e.after == "prefetcher.next_shard()" for e in result.evidence)


PRECISION_EDITS = {
    "rotary no longer upcasts": [("x.to(dtype=torch.float32).chunk(2, dim=-1)", "x.chunk(2, dim=-1)")],
    "rotary output no longer cast back": [("return torch.cat((y1, y2), 3).type_as(x)",
                                           "return torch.cat((y1, y2), 3)")],
    "Adam state in bfloat16": [('state["exp_avg"] = torch.zeros_like(p)',
                                'state["exp_avg"] = torch.zeros(p.shape, dtype=torch.bfloat16, device=p.device)')],
    "linear layers in bfloat16 too": [("if isinstance(m, nn.Embedding):",
                                       "if isinstance(m, (nn.Embedding, nn.Linear)):")],
    "rotary tables in bfloat16": [("self.cos, self.sin = theta.cos()[None, :, None, :], theta.sin()[None, :, None, :]",
                                   "self.cos = theta.cos()[None, :, None, :].to(torch.bfloat16)\n"
                                   "        self.sin = theta.sin()[None, :, None, :].to(torch.bfloat16)")],
}


@pytest.mark.parametrize("name", sorted(PRECISION_EDITS))
def test_precision_changes_are_systems(name):
    result = classify_record(record_edit(*PRECISION_EDITS[name]))
    assert result.kind == SYSTEMS and not result.mixed, [e.text() for e in result.evidence]
    assert not_by_the_whole_file(result)


def test_the_isinstance_guard_of_a_cast_is_judged_by_the_cast():
    result = classify_record(record_edit(*PRECISION_EDITS["linear layers in bfloat16 too"]))
    (e,) = result.evidence
    assert "m.bfloat16" in e.why


def test_a_new_parameter_created_with_an_explicit_dtype_is_algorithmic():
    new = record_edit(("        self.gain = nn.Parameter(torch.ones(dim))\n",
                       "        self.gain = nn.Parameter(torch.ones(dim))\n"
                       "        self.head_gate = nn.Parameter(torch.zeros(num_heads, dtype=torch.float32))\n"),
                      ("y = y.transpose(1, 2).contiguous()",
                       "y = (y.transpose(1, 2) * torch.sigmoid(self.head_gate)[:, None]).contiguous()"))
    result = classify_record(new)
    assert result.kind == ALGORITHMIC and not result.mixed, [e.text() for e in result.evidence]


def test_state_set_up_inside_a_function_is_not_a_knob():
    new = record_edit(("        self.i = 0\n", "        self.i = 0\n        self.calls = 0\n"),
                      ("    def next_start(self, pos: int) -> int:\n",
                       "    def next_start(self, pos: int) -> int:\n        self.calls += 1\n"))
    result = classify_record(new)
    assert result.kind == ALGORITHMIC and not result.parts.get(HYPERPARAMETER), [e.text() for e in result.evidence]
    assert any(e.kind == NEUTRAL and e.after == "self.calls = 0" for e in result.evidence)


@pytest.mark.parametrize("edit", [
    ("BOS_ID = 50256\n", "BOS_ID = 50256\nMAX_DOC_LEN = 4096\n"),  # module level
    ("    cooldown_frac: float = 0.45\n", "    cooldown_frac: float = 0.45\n    val_tokens: int = 10485760\n"),
    ("        self.attn_scale = 0.12\n", "        self.attn_scale = 0.12\n        self.gain_init = 1.5\n"),  # __init__
    ("num_heads: int, head_dim=128)", "num_heads: int, head_dim=128, window_mult=128)"),  # a parameter default
    ("CausalSelfAttention(dim, num_heads)", "CausalSelfAttention(dim, num_heads, head_dim=64)"),  # a keyword argument
])
def test_knobs_added_where_knobs_live_are_hyperparameters(edit):
    result = classify_record(record_edit(edit))
    assert result.kind == HYPERPARAMETER, [e.text() for e in result.evidence]


def test_a_literal_keyword_of_a_systems_call_is_systems():
    result = classify_record(record_edit(("torch.compile(model, dynamic=False)",
                                          'torch.compile(model, dynamic=False, mode="max-autotune")')))
    assert result.kind == SYSTEMS and not_by_the_whole_file(result)


def test_a_dataclass_of_tensors_is_no_hyperparameter_class():
    new = record_edit(("    window: int\n", "    window: int\n    long_window: int\n"),
                      ("window=window)", "window=window, long_window=2 * window)"))
    result = classify_record(new)
    assert result.kind == ALGORITHMIC and not result.mixed, [e.text() for e in result.evidence]
    for name in ("Hyperparameters", "Hyperparameter", "GPTConfig", "TrainConfig", "Args", "Settings", "HParams"):
        assert KNOB_CLASS.search(name), name
    for name in ("AttnArgs", "ForwardArgs", "ArgsParser", "ConfigLoader"):
        assert not KNOB_CLASS.search(name), name


@pytest.mark.parametrize("name,edit", [
    ("a consistent rename", lambda t: t.replace("attn_args", "rope_args")),
    ("an annotation", lambda t: sub(t, "num_heads: int, head_dim=128)", "num_heads: int, head_dim: int = 128)")),
    ("return annotations dropped", lambda t: t.replace(") -> Tensor:", "):")),
    ("the run id", lambda t: sub(t, "run_id: str = str(uuid.uuid4())", 'run_id: str = f"sharded-muon/{uuid.uuid4()}"')),
])
def test_refactors_that_run_the_same_code_are_none(name, edit):
    result = classify_record(edit(TRITON_RECORD))
    assert result.kind == NONE, [e.text() for e in result.evidence]


def test_swapping_two_names_that_stay_in_use_is_no_rename():
    result = classify_record(record_edit(("rotary(q, attn_args.cos, attn_args.sin)",
                                          "rotary(q, attn_args.sin, attn_args.cos)")))
    assert result.kind == ALGORITHMIC


# ------------------------------------------------------------------------------------------------ parents

def test_nearest_earlier_code_is_the_likely_parent():
    a = {"train_gpt.py": ANCHOR}
    b = {"train_gpt.py": sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700")}
    c = {"train_gpt.py": sub(b["train_gpt.py"], *ALGORITHMIC_EDITS["activation (model)"][0])}
    assert code_distance(a, a) == 0 and code_distance(a, b) == 2
    assert nearest(c, [("anchor", a), ("b", b)]) == "b"
    assert nearest(b, [("anchor", a), ("b-copy", b)]) == "b-copy"


# ------------------------------------------------------------------------------------------------ the command

def test_classify_command_prints_kind_and_evidence(tmp_path, capsys):
    parent, child = tmp_path / "parent", tmp_path / "child"
    for folder in (parent, child):
        folder.mkdir()
        (folder / "run.sh").write_text(RUN_SH)
    (parent / "train_gpt.py").write_text(ANCHOR)
    (child / "train_gpt.py").write_text(sub(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"),
                                            *ALGORITHMIC_EDITS["activation (model)"][0]))
    (child / "notes.md").write_text("not code: ignored\n")
    assert main(["classify", str(parent), str(child), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "algorithmic" and out["mixed"] is False and out["label"] == "algorithmic"
    assert out["shares"] == {"hyperparameter": 0.2, "algorithmic": 0.8, "systems": 0.0}
    assert [e["kind"] for e in out["evidence"]] == ["algorithmic", "hyperparameter"]
    assert {"file", "line", "scope", "change", "nodes", "before", "after", "why", "weight", "nature", "weighed",
            "text"} <= set(out["evidence"][0])
    assert main(["classify", str(parent), str(child)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("algorithmic (80%; hyperparameter 20%)\n")
    assert "MLP.forward: structure F.relu(self.fc(x)).square() -> F.gelu(self.fc(x))" in text
    assert classify_dirs(parent, parent).kind == NONE
    assert main(["classify", str(parent), str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
