"""The classifier weighs its evidence: self-written two-file records (train_gpt.py + triton_kernels.py, in the
style of the 2026 records) changed the ways human records change them, each labelled by the kind that holds most
of the change's weight, with every part's evidence (file, line, what changed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.classify import ALGORITHMIC, HYPERPARAMETER, NONE, SYSTEMS, classify_sources

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "refactor"
RECORD = {name: (FIXTURE / name).read_text() for name in ("train_gpt.py", "triton_kernels.py", "run.sh")}


def edited(**edits: list[tuple[str, str]]) -> dict[str, str]:
    files = dict(RECORD)
    for name, pairs in edits.items():
        name = name.replace("__", ".")
        for old, new in pairs:
            assert files[name].count(old) == 1, old
            files[name] = files[name].replace(old, new)
    return files


def classify(**edits: list[tuple[str, str]]):
    return classify_sources(RECORD, edited(**edits))


# A pure-kernel record: the Triton kernel computes relu^2 with one load less per block and wider blocks.
PURE_KERNEL = {"triton_kernels__py": [
    ("    y = tl.maximum(x, 0.0)\n    tl.store(out_ptr + offsets, y * y, mask=mask)\n",
     "    y = tl.where(x > 0, x, 0.0)\n    y2 = y * y\n    tl.store(out_ptr + offsets, y2, mask=mask)\n"),
    ("relu_square_kernel[grid](x, out, n, BLOCK_SIZE=1024)",
     "relu_square_kernel[grid](x, out, n, BLOCK_SIZE=4096, num_warps=8)"),
]}

# A pure-schedule record: a longer cooldown and a window schedule that reaches its last window later.
PURE_SCHEDULE = {"train_gpt__py": [
    ("    x = min(step / args.num_scheduled_iterations, 0.9999)\n",
     "    x = min((step / args.num_scheduled_iterations) ** 1.5, 0.9999)\n"),
]}

# A refactor with no behavioural change: `norm` moves from train_gpt.py into triton_kernels.py and is imported.
REFACTOR = {
    "train_gpt__py": [("def norm(x: Tensor) -> Tensor:\n    return F.rms_norm(x, (x.size(-1),))\n\n\n", ""),
                      ("from triton_kernels import relu_square, softcap",
                       "from triton_kernels import norm, relu_square, softcap")],
    "triton_kernels__py": [("\n\ndef _softcap(", "\n\ndef norm(x):\n    return F.rms_norm(x, (x.size(-1),))\n\n\n"
                                                "def _softcap(")],
}

# A new model computation: a learned gate on the attention output (a new parameter and its use).
NEW_GATE = {"train_gpt__py": [
    ("        self.proj = nn.Linear(4 * dim, dim, bias=False)\n",
     "        self.proj = nn.Linear(4 * dim, dim, bias=False)\n        self.gate = nn.Linear(12, num_heads, bias=False)\n"),
    ("        x = x + y.transpose(1, 2).reshape(B, T, C) @ self.qkvo[3]\n",
     "        g = torch.sigmoid(self.gate(x[..., :12])).transpose(1, 2)[..., None]\n"
     "        x = x + (g * y).transpose(1, 2).reshape(B, T, C) @ self.qkvo[3]\n"),
]}


def test_a_pure_kernel_record_is_systems_with_its_evidence_in_the_kernel_file():
    result = classify(**PURE_KERNEL)
    assert (result.label, result.shares[SYSTEMS]) == (SYSTEMS, 1.0), result.summary()
    assert {e.file for e in result.evidence if e.kind == SYSTEMS} == {"triton_kernels.py"}
    assert all(e.line for e in result.evidence)


def test_a_pure_schedule_record_is_hyperparameter_tuning():
    result = classify(**PURE_SCHEDULE)
    assert result.label == HYPERPARAMETER, [e.text() for e in result.evidence]
    (e,) = [e for e in result.evidence if e.kind == HYPERPARAMETER]
    assert e.scope == "window_for" and "schedule function window_for" in e.why


def test_a_refactor_that_moves_code_between_files_is_no_change():
    result = classify(**REFACTOR)
    assert result.kind == NONE, [e.text() for e in result.evidence]
    moved = [e for e in result.evidence if e.why.startswith("moved code")]
    assert {e.file for e in moved} == {"train_gpt.py", "triton_kernels.py"}


def test_a_new_model_computation_is_algorithmic():
    result = classify(**NEW_GATE)
    assert result.label == ALGORITHMIC, [e.text() for e in result.evidence]
    assert any("sigmoid" in e.why for e in result.evidence if e.kind == ALGORITHMIC)


def test_the_kind_follows_the_weight_not_any_algorithmic_part():
    # A kernel rewritten (several lines of systems work) plus a one-line model tweak is systems, not algorithmic;
    # the algorithmic part keeps its own evidence and its share.
    result = classify(triton_kernels__py=PURE_KERNEL["triton_kernels__py"],
                      train_gpt__py=[("return x + self.proj(relu_square(self.fc(norm(x))))",
                                      "return x + self.proj(relu_square(self.fc(norm(x)))) * 0.5 ** 0.5 * 2 ** 0.5 + x * 0")])
    assert result.kind == SYSTEMS and result.parts[ALGORITHMIC] == 1, result.summary()
    assert 0 < result.shares[ALGORITHMIC] < result.shares[SYSTEMS]
    (alg,) = [e for e in result.evidence if e.kind == ALGORITHMIC]
    assert (alg.file, alg.scope) == ("train_gpt.py", "Block.forward") and alg.line


@pytest.mark.parametrize("edits", [PURE_KERNEL, NEW_GATE, PURE_SCHEDULE])
def test_shares_sum_to_one_and_every_part_has_a_place(edits):
    d = classify(**edits).to_dict()
    assert sum(d["shares"].values()) == pytest.approx(1.0)
    for e in d["evidence"]:
        assert e["file"] in RECORD and e["why"] and e["weight"] >= 0 and (e["before"] or e["after"])


def test_a_knob_added_with_new_model_code_is_part_of_that_code():
    # A new bigram table: its size is a new knob, read only by the new embedding, so it is not a retuned value.
    result = classify(train_gpt__py=[
        ("args = Hyperparameters()\n", "args = Hyperparameters()\nBIGRAM_VOCAB = 5 * 50304\n"),
        ("        self.embed = nn.Embedding(vocab_size, model_dim)\n",
         "        self.embed = nn.Embedding(vocab_size, model_dim)\n"
         "        self.bigram = nn.Embedding(BIGRAM_VOCAB, model_dim)\n"),
        ("        x = norm(self.embed(inputs)[None])\n",
         "        x = norm(self.embed(inputs)[None] + self.bigram(inputs * 31 % BIGRAM_VOCAB)[None])\n"),
    ])
    (knob,) = [e for e in result.evidence if e.why.startswith("a knob added")]
    assert knob.kind == ALGORITHMIC and "read by the algorithmic code" in knob.why, knob.text()
    assert result.label == ALGORITHMIC and result.shares[HYPERPARAMETER] == 0, result.summary()


def test_index_arithmetic_and_a_repeated_import_are_not_the_change():
    # The head split written out (`C // self.num_heads`: the same view) and `dist` imported a second time, next to
    # a retuned learning rate: the learning rate is the change.
    result = classify(train_gpt__py=[
        (".view(3, B, T, self.num_heads, -1)", ".view(3, B, T, self.num_heads, C // self.num_heads)"),
        ("import torch.nn.functional as F\n", "import torch.nn.functional as F\nimport torch.distributed as dist\n"),
        ("NorMuon(matrices, lr=0.023)", "NorMuon(matrices, lr=0.025)"),
    ])
    assert result.label == HYPERPARAMETER, [e.text() for e in result.evidence]
    whys = {e.why for e in result.evidence}
    assert any(w.startswith("index and size arithmetic in forward") for w in whys), whys
    assert "an import the file has before and after (moved or repeated)" in whys


# Placement plumbing: each batch moved and cast explicitly where the model is called, in the warm-up and in the
# training loop (dtype, device).
_CAST_CALL = ("    model(\n"
              "        inputs.to(device=device, dtype=torch.int32),\n"
              "        targets.to(device=device, dtype=torch.int64),\n"
              "        window_for(step),\n"
              "    ).backward()\n")
PLACEMENT = {"train_gpt__py": [
    (f"{before}    inputs, targets = next(train_loader)\n    model(inputs, targets, window_for(step)).backward()\n",
     f"{before}    inputs, targets = next(train_loader)\n{_CAST_CALL}")
    for before in ("for step in warmup_steps:\n", "        break\n")
]}


def test_placement_plumbing_alone_is_systems_work_at_half_weight():
    result = classify(**PLACEMENT)
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]
    places = [e for e in result.evidence if e.kind == SYSTEMS]
    assert places and all(e.nature == "placement" and e.weighed == e.weight / 2 for e in places), places


def test_a_few_lines_of_new_computation_outweigh_more_lines_of_placement_plumbing():
    # Three lines of a new gate (a parameter and its use) against four lines of dtype/device plumbing: by lines the
    # plumbing would win; weighed by what each part is, the new computation is the change.
    result = classify(train_gpt__py=NEW_GATE["train_gpt__py"] + PLACEMENT["train_gpt__py"])
    assert result.label == ALGORITHMIC, result.summary()
    lines = {k: sum(e.weight for e in result.evidence if e.kind == k) for k in (ALGORITHMIC, SYSTEMS)}
    assert lines[SYSTEMS] > lines[ALGORITHMIC], lines
    assert {e.nature for e in result.evidence if e.kind == ALGORITHMIC} >= {"computation"}


def test_an_optimizer_method_that_computes_nothing_is_bookkeeping_not_an_algorithm():
    # A method grouping the optimizer's parameters by size (bookkeeping, in the optimizer's class) next to a
    # retuned learning rate: the learning rate is the change.
    result = classify(train_gpt__py=[
        ("    @torch.no_grad()\n    def step(self):\n        for group in self.param_groups:\n",
         "    def groups_by_size(self) -> list[list[Tensor]]:\n"
         "        by_size = {}\n"
         "        for group in self.param_groups:\n"
         "            for p in group[\"params\"]:\n"
         "                by_size.setdefault(p.numel(), []).append(p)\n"
         "        return [by_size[n] for n in sorted(by_size)]\n\n"
         "    @torch.no_grad()\n    def step(self):\n        for group in self.param_groups:\n"),
        ("NorMuon(matrices, lr=0.023)", "NorMuon(matrices, lr=0.025)"),
    ])
    assert result.label == HYPERPARAMETER, [e.text() for e in result.evidence]
    (method,) = [e for e in result.evidence if "groups_by_size" in (e.after or "")]
    assert method.kind == "plumbing" and method.scope.startswith("NorMuon"), method.text()


def test_a_change_in_an_optimizer_step_is_still_its_algorithm():
    # The same class's computation: a changed update rule in `step` is algorithmic.
    result = classify(train_gpt__py=[("buf.lerp_(p.grad, 1 - group[\"momentum\"])",
                                      "buf.mul_(group[\"momentum\"]).add_(p.grad.sign())")])
    assert result.label == ALGORITHMIC, [e.text() for e in result.evidence]
