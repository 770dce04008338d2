"""Every rule still catches its cheat against a 2026-style anchor (train_gpt.py + triton_kernels.py, a Hyperparameters
data path, a set-based warm-up step list, a training manager that restores the optimizer), and the anchor's own
legitimate kind of change passes. The fixture is our own record in the records' style (tests/fixtures/rules/anchor2026)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nanogpt_tui.validator.rules import check_rules

REPO = Path(__file__).resolve().parents[2]
ANCHOR = REPO / "tests" / "fixtures" / "rules" / "anchor2026"
TRAIN, KERNELS, RUN = "train_gpt.py", "triton_kernels.py", "run.sh"
LAUNCH = "torchrun --standalone --nproc_per_node=8 train_gpt.py"
MODEL_COMPILE = "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True)"
KERNEL_COMPILE = "@torch.compile(dynamic=False, fullgraph=True)\ndef softcapped_cross_entropy"
IN_LOOP_VAL_LOADER = "        val_loader = distributed_data_generator(args.val_files, args.val_batch_size, rank, world_size)\n"


def variant(tmp_path: Path, edits: list[tuple[str, str, str]]) -> Path:
    dest = tmp_path / "candidate"
    shutil.copytree(ANCHOR, dest)
    for file, old, new in edits:
        text = (dest / file).read_text()
        assert text.count(old) == 1, f"{old!r} must occur once in {file}"
        (dest / file).write_text(text.replace(old, new))
    return dest


# (name, the rule that must report it, edits): each a way to game the measurement against a 2026 anchor.
CHEATS = [
    ("compile-mode", "compile-flags", [(TRAIN, MODEL_COMPILE, MODEL_COMPILE[:-1] + ', mode="max-autotune")')]),
    ("compile-mode-in-kernels-file", "compile-flags",
     [(KERNELS, KERNEL_COMPILE, KERNEL_COMPILE.replace("fullgraph=True)", 'fullgraph=True, mode="reduce-overhead")'))]),
    ("compile-options-in-kernels-file", "compile-flags",
     [(KERNELS, KERNEL_COMPILE, KERNEL_COMPILE.replace("fullgraph=True)", 'fullgraph=True, options={"epilogue_fusion": False})'))]),
    ("inductor-setting-in-kernels-file", "compiler-config",
     [(KERNELS, "import triton\n", "import triton\ntorch._inductor.config.max_autotune_gemm = True\n")]),
    ("dynamo-setting-in-kernels-file", "compiler-config",
     [(KERNELS, "import triton\n", "import triton\ntorch._dynamo.config.automatic_dynamic_shapes = False\n")]),
    ("inductor-env-in-kernels-file", "compiler-config",
     [(KERNELS, "import torch\n", "import os\nos.environ['TORCHINDUCTOR_MAX_AUTOTUNE'] = '1'\nimport torch\n")]),
    ("recompile-limit", "recompile-limit", [(TRAIN, "recompile_limit = 64", "recompile_limit = 512")]),
    ("coordinate-descent", "coordinate-descent",
     [(TRAIN, "#torch._inductor.config.coordinate_descent_tuning = True", "torch._inductor.config.coordinate_descent_tuning = True")]),
    ("val-tokens", "val-constants", [(TRAIN, "val_tokens: int = 10485760", "val_tokens: int = 5242880")]),
    ("val-batch-size", "val-constants", [(TRAIN, "val_batch_size: int = 4 * 64 * 1024 * 8", "val_batch_size: int = 2 * 64 * 1024 * 8")]),
    ("val-files-one-shard", "val-constants",
     [(TRAIN, '"data/fineweb10B/fineweb_val_*.bin"', '"data/fineweb10B/fineweb_val_000000.bin"')]),
    ("val-files-elsewhere-through-run-sh", "val-constants", [(RUN, LAUNCH, "export DATA_PATH=/tmp/easy\n" + LAUNCH)]),
    ("val-files-in-the-workspace", "val-constants",
     [(TRAIN, '"data/fineweb10B/fineweb_val_*.bin"', '"experiments/fineweb_val_*.bin"')]),
    ("train-files-elsewhere", "train-files",
     [(TRAIN, '"data/fineweb10B/fineweb_train_*.bin"', '"data/fineweb10B/fineweb_val_*.bin"')]),
    ("val-loader-reused", "val-loader",
     [(TRAIN, IN_LOOP_VAL_LOADER, ""), (TRAIN, "train_steps = training_schedule.total_steps\n",
                                        "train_steps = training_schedule.total_steps\n" + IN_LOOP_VAL_LOADER.strip() + "\n")]),
    ("val-steps-halved", "val-reduce",
     [(TRAIN, "            for _ in range(val_steps):", "            for _ in range(val_steps // 2):")]),
    ("loss-not-averaged-over-ranks", "val-reduce", [(TRAIN, "        dist.reduce(val_loss, 0, op=dist.ReduceOp.AVG)\n", "")]),
    ("loss-not-averaged-over-steps", "val-reduce", [(TRAIN, "        val_loss /= val_steps\n", "")]),
    ("timer-scaled", "timing-clock",
     [(TRAIN, "        training_time_ms += 1000 * (time.perf_counter() - t0)",
       "        training_time_ms += 500 * (time.perf_counter() - t0)")]),
    ("timer-not-stopped-for-validation", "timing-clock",
     [(TRAIN, "        # stop the clock\n        torch.cuda.synchronize()\n        training_time_ms += 1000 * (time.perf_counter() - t0)\n", "")]),
    ("timer-restarted-late", "timing-clock",
     [(TRAIN, "    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n    training_manager.step()\n    approx",
       "    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n    training_manager.step()\n"
       "    t0 = time.perf_counter()\n    approx")]),
    ("warmup-optimizer-not-restored", "warmup", [(TRAIN, 'training_manager.reset(initial_state["optimizer"])\n', "")]),
    ("warmup-nothing-restored", "warmup",
     [(TRAIN, 'model.load_state_dict(initial_state["model"])\ntraining_manager.reset(initial_state["optimizer"])\n', "")]),
    ("warmup-trains-after-restore", "warmup",
     [(TRAIN, "del train_loader, initial_state\n",
       "for _ in range(200):\n    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n"
       "    training_manager.step()\ndel train_loader, initial_state\n")]),
    ("fixed-steps-early-stop", "fixed-steps",
     [(TRAIN, "        model.train()\n", "        model.train()\n        if val_loss < 3.28:\n            break\n")]),
    ("fixed-steps-bound-changed", "fixed-steps",
     [(TRAIN, "    if last_step:\n        break\n", "    if last_step:\n        break\n    train_steps -= 1\n")]),
    ("run-sh-installs", "run-deps", [(RUN, LAUNCH, "pip install -U torch\n" + LAUNCH)]),
    ("run-sh-more-gpus", "launch-shape", [(RUN, "--nproc_per_node=8", "--nproc_per_node=16")]),
]


@pytest.mark.parametrize(("name", "rule", "edits"), CHEATS, ids=[c[0] for c in CHEATS])
def test_each_cheat_is_a_violation_against_a_2026_anchor(tmp_path, name, rule, edits):
    report = check_rules(ANCHOR, variant(tmp_path, edits))
    rules = {v.rule for v in report.violations}
    assert rule in rules, f"{name}: expected {rule}, got {sorted(rules)}"
    # A cheat is a violation, never only a question for the judge.
    assert all(q.rule != rule or rule in rules for q in report.needs_judge)


def test_the_anchor_passes_against_itself_and_a_newer_record_style_change_passes(tmp_path):
    assert check_rules(ANCHOR, ANCHOR).ok
    newer = variant(tmp_path, [
        (TRAIN, "lr: float = 0.008", "lr: float = 0.0085"),
        (TRAIN, "get_kernel('varunneal/flash-attention-3')", "get_kernel('kernels-community/flash-attn3', version=1)"),
        # The same files spelled without the data folder, as some records did.
        (TRAIN, 'os.path.join(data_path, "data/fineweb10B/fineweb_val_*.bin")', '"./data/fineweb10B/fineweb_val_*.bin"'),
        (KERNELS, "    logits = 15 * torch.tanh(logits.float() / 15)\n", "    logits = 15 * torch.tanh(logits.float() / 15.0)\n"),
    ])
    report = check_rules(ANCHOR, newer)
    assert report.ok and not report.needs_judge, report.to_json()


def test_a_changed_computed_warmup_list_goes_to_the_judge_not_silently_through(tmp_path):
    changed = variant(tmp_path, [(TRAIN, "for offset in [-1, 0, 1]", "for offset in [-2, -1, 0, 1]")])
    report = check_rules(ANCHOR, changed)
    assert report.ok
    assert [q.rule for q in report.needs_judge] == ["warmup"] and "warm-up" in report.needs_judge[0].message


def test_data_paths_another_machine_used_go_to_the_judge_and_the_data_volume_is_one_place(tmp_path):
    elsewhere = variant(tmp_path, [(TRAIN, 'os.path.join(data_path, "data/fineweb10B/fineweb_val_*.bin")',
                                    '"/data/12345/me/data/fineweb10B/fineweb_val_*.bin"')])
    report = check_rules(ANCHOR, elsewhere)
    assert report.ok and [q.rule for q in report.needs_judge] == ["val-constants"]
    other_folder_of_the_volume = variant(tmp_path / "b", [(TRAIN, '"data/fineweb10B/fineweb_train_*.bin"',
                                                           '"data/fineweb/fineweb_train_*.bin"')])
    assert check_rules(ANCHOR, other_folder_of_the_volume).ok
