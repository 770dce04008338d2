"""The change classifier on realistic pairs of each kind: edits of a speedrun-style record the way agents and human
record-setters make them, a mixed change, and changes that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanogpt_tui.classify import (
    ALGORITHMIC,
    HYPERPARAMETER,
    NONE,
    SYSTEMS,
    classify_dirs,
    classify_sources,
    code_distance,
    nearest,
)
from nanogpt_tui.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"
ANCHOR = (FIXTURES / "anchor" / "train_gpt.py").read_text()
RUN_SH = (FIXTURES / "anchor" / "run.sh").read_text()
KERNELS = (FIXTURES / "refactor" / "triton_kernels.py").read_text()
SMOKE = (Path(__file__).resolve().parents[2] / "human_baselines" / "smoke" / "train_gpt.py").read_text()


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
    assert all(e.kind in (ALGORITHMIC, "neutral") for e in result.evidence), [e.text() for e in result.evidence]


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

def test_a_mixed_change_is_labelled_by_its_strongest_kind():
    new = sub(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"),
              *ALGORITHMIC_EDITS["activation (model)"][0])
    result = classify(new)
    assert result.kind == ALGORITHMIC and result.mixed
    assert result.parts == {ALGORITHMIC: 1, HYPERPARAMETER: 1}
    assert result.summary() == "algorithmic (mixed: 1 algorithmic, 1 hyperparameter)"
    # The evidence explaining the label comes first.
    assert result.evidence[0].kind == ALGORITHMIC and result.evidence[1].kind == HYPERPARAMETER


def test_systems_plus_retuned_constants_is_systems_mixed():
    new = sub(sub(ANCHOR, "num_iterations: int = 1750", "num_iterations: int = 1700"),
              *SYSTEMS_EDITS["logits in bfloat16 (precision)"][0])
    result = classify(new)
    assert (result.kind, result.mixed) == (SYSTEMS, True)
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
    assert out["kind"] == "algorithmic" and out["mixed"] is True
    assert [e["kind"] for e in out["evidence"]] == ["algorithmic", "hyperparameter"]
    assert {"file", "line", "scope", "change", "nodes", "before", "after", "why", "text"} <= set(out["evidence"][0])
    assert main(["classify", str(parent), str(child)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("algorithmic (mixed: 1 algorithmic, 1 hyperparameter)\n")
    assert "MLP.forward: structure F.relu(self.fc(x)).square() -> F.gelu(self.fc(x))" in text
    assert classify_dirs(parent, parent).kind == NONE
    assert main(["classify", str(parent), str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
