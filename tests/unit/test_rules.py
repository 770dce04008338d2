"""Static rule checks: every rule flags a violating variant of the anchor fixture and accepts a legitimate one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.errors import UserError
from nanogpt_tui.validator.rules import RULE_IDS, RULES, RuleReport, check_rules

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "rules"
ANCHOR = FIXTURES / "anchor"
REFACTOR = FIXTURES / "refactor"
SMOKE = REPO / "human_baselines" / "smoke"

TRAIN = "train_gpt.py"
RUN = "run.sh"


# -----------------------------------------------------------------------------
# Helpers


@dataclass
class Case:
    """A variant of a base folder: text edits (file, old, new), each old text occurring exactly once."""

    name: str
    rule: str
    edits: list[tuple[str, str, str]]
    # Where the violation must be reported: (file, a snippet of the offending line) or (file, None) for line 0.
    where: tuple[str, str | None] | None = None
    base: Path = ANCHOR
    extra_files: dict[str, str] = field(default_factory=dict)
    removed_files: tuple[str, ...] = ()


def make_variant(tmp_path: Path, case: Case) -> Path:
    dest = tmp_path / "candidate"
    shutil.copytree(case.base, dest)
    for file, old, new in case.edits:
        path = dest / file
        text = path.read_text()
        assert text.count(old) == 1, f"{case.name}: {old!r} must occur exactly once in {file}"
        path.write_text(text.replace(old, new))
    for file, text in case.extra_files.items():
        (dest / file).write_text(text)
    for file in case.removed_files:
        (dest / file).unlink()
    return dest


def line_of(folder: Path, file: str, snippet: str) -> int:
    lines = (folder / file).read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if snippet in line]
    assert len(hits) == 1, f"{snippet!r} must be on exactly one line of {file}, found {hits}"
    return hits[0]


def describe(report: RuleReport) -> str:
    return "\n".join(f"{v.file}:{v.line} [{v.rule}] {v.message}" for v in report.violations) or "(no violations)"


def T(old: str, new: str) -> tuple[str, str, str]:
    return (TRAIN, old, new)


def R(old: str, new: str) -> tuple[str, str, str]:
    return (RUN, old, new)


STOP_CLOCK = ("        torch.cuda.synchronize()\n"
              "        training_time_ms += 1000 * (time.perf_counter() - t0)\n")
RESTART_CLOCK = ("        # start the clock again\n"
                 "        torch.cuda.synchronize()\n"
                 "        t0 = time.perf_counter()\n")
LAUNCH = "torchrun --standalone --nproc_per_node=8 train_gpt.py"
MODEL_COMPILE = "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True)"
VAL_LOADER = "        val_loader = distributed_data_generator(args.val_files, args.val_batch_size, rank, world_size)\n"
RESTORE_OPTS = ("for opt, opt_state in zip(optimizers, initial_state[\"optimizers\"]):\n"
                "    opt.load_state_dict(opt_state)\n")
LOOP = "for step in range(train_steps + 1):"


# -----------------------------------------------------------------------------
# Violating variants: each must be reported under its rule, at the offending line, and nothing else.

VIOLATIONS: list[Case] = [
    # syntax
    Case("syntax-in-train-script", "syntax",
         [T("def norm(x: Tensor) -> Tensor:", "def norm(x: Tensor) -> Tensor")],
         (TRAIN, "def norm(x: Tensor) -> Tensor")),
    Case("syntax-in-imported-module", "syntax",
         [("triton_kernels.py", "def relu_square(x: torch.Tensor) -> torch.Tensor:",
           "def relu_square(x: torch.Tensor) -> torch.Tensor")],
         ("triton_kernels.py", "def relu_square(x: torch.Tensor) -> torch.Tensor"), base=REFACTOR),
    # compile-flags
    Case("compile-mode", "compile-flags",
         [T(MODEL_COMPILE, "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True, "
                           "mode=\"max-autotune\")")],
         (TRAIN, "mode=\"max-autotune\"")),
    Case("compile-alias-new-dynamic", "compile-flags",
         [T("import torch._dynamo as dynamo\n", "import torch._dynamo as dynamo\nfrom torch import compile as tc\n"),
          T(MODEL_COMPILE, "model: nn.Module = tc(model, dynamic=True, fullgraph=True)")],
         (TRAIN, "tc(model, dynamic=True")),
    Case("compile-options", "compile-flags",
         [T(MODEL_COMPILE, "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True, "
                           "options={\"triton.cudagraphs\": True})")],
         (TRAIN, "triton.cudagraphs")),
    Case("compile-partial-mode", "compile-flags",
         [T("@torch.compile(dynamic=False, fullgraph=True)\ndef zeropower",
            "@functools.partial(torch.compile, mode=\"reduce-overhead\")\ndef zeropower"),
          T("import copy\n", "import copy\nimport functools\n")],
         (TRAIN, "functools.partial(torch.compile")),
    Case("compile-opaque-kwargs", "compile-flags",
         [T(MODEL_COMPILE, "model: nn.Module = torch.compile(model, **compile_flags_from_env())")],
         (TRAIN, "compile_flags_from_env")),
    Case("module-compile-method", "compile-flags",
         [T(MODEL_COMPILE, "model.compile(dynamic=False, backend=\"cudagraphs\")")],
         (TRAIN, "backend=\"cudagraphs\"")),
    # compiler-config
    Case("inductor-setting", "compiler-config",
         [T("dynamo.config.recompile_limit = 64\n",
            "dynamo.config.recompile_limit = 64\ntorch._inductor.config.max_autotune_gemm = True\n")],
         (TRAIN, "max_autotune_gemm")),
    Case("inductor-setting-through-alias", "compiler-config",
         [T("import torch._dynamo as dynamo\n",
            "import torch._dynamo as dynamo\nimport torch._inductor.config as inductor_config\n"
            "inductor_config.epilogue_fusion = False\n")],
         (TRAIN, "inductor_config.epilogue_fusion")),
    Case("inductor-setattr", "compiler-config",
         [T("dynamo.config.recompile_limit = 64\n",
            "dynamo.config.recompile_limit = 64\nsetattr(torch._inductor.config, \"aggressive_fusion\", True)\n")],
         (TRAIN, "aggressive_fusion")),
    Case("inductor-patch", "compiler-config",
         [T(MODEL_COMPILE, "with torch._inductor.config.patch(max_autotune=True):\n    " + MODEL_COMPILE)],
         (TRAIN, "patch(max_autotune=True)")),
    Case("dynamo-setting", "compiler-config",
         [T("dynamo.config.recompile_limit = 64\n",
            "dynamo.config.recompile_limit = 64\ndynamo.config.automatic_dynamic_shapes = False\n")],
         (TRAIN, "automatic_dynamic_shapes")),
    Case("inductor-env-in-python", "compiler-config",
         [T('os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"\n',
            'os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"\n'
            'os.environ["TORCHINDUCTOR_MAX_AUTOTUNE"] = "1"\n')],
         (TRAIN, "TORCHINDUCTOR_MAX_AUTOTUNE")),
    Case("inductor-env-in-run-sh", "compiler-config",
         [R(LAUNCH, "TORCHINDUCTOR_FREEZING=1 " + LAUNCH)],
         (RUN, "TORCHINDUCTOR_FREEZING")),
    # recompile-limit
    Case("recompile-limit-raised", "recompile-limit",
         [T("dynamo.config.recompile_limit = 64", "dynamo.config.recompile_limit = 256")],
         (TRAIN, "recompile_limit = 256")),
    Case("recompile-limit-dropped", "recompile-limit",
         [T("dynamo.config.recompile_limit = 64\n", "")],
         (TRAIN, None)),
    # coordinate-descent
    Case("coordinate-descent-uncommented", "coordinate-descent",
         [T("#torch._inductor.config.coordinate_descent_tuning = True", "torch._inductor.config."
                                                                       "coordinate_descent_tuning = True")],
         (TRAIN, "coordinate_descent_tuning = True")),
    Case("coordinate-descent-compile-option", "coordinate-descent",
         [T(MODEL_COMPILE, "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True, "
                           "options={\"coordinate_descent_tuning\": True})")],
         (TRAIN, "options={\"coordinate_descent_tuning\"")),
    Case("coordinate-descent-env", "coordinate-descent",
         [R(LAUNCH, "export TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1\n" + LAUNCH)],
         (RUN, "TORCHINDUCTOR_COORDINATE_DESCENT_TUNING")),
    # val-constants
    Case("val-tokens-halved", "val-constants",
         [T("val_tokens: int = 10485760", "val_tokens: int = 5242880")],
         (TRAIN, "val_tokens: int = 5242880")),
    Case("val-batch-size-changed", "val-constants",
         [T("val_batch_size: int = 4 * 64 * 1024 * 8", "val_batch_size: int = 2 * 64 * 1024 * 8")],
         (TRAIN, "val_batch_size: int = 2 * 64")),
    Case("val-files-changed", "val-constants",
         [T('val_files: str = "data/fineweb10B/fineweb_val_*.bin"',
            'val_files: str = "data/fineweb10B/fineweb_val_00000[0].bin"')],
         (TRAIN, "fineweb_val_00000[0]")),
    Case("val-files-relocated", "val-constants",
         [T("args.val_files = os.path.join(data_path, args.val_files)",
            "args.val_files = os.path.join(data_path, \"holdout\", args.val_files)")],
         (TRAIN, "holdout")),
    Case("val-tokens-from-environment", "val-constants",
         [T("val_tokens: int = 10485760", "val_tokens: int = int(os.environ.get(\"VAL_TOKENS\", 10485760))")],
         (TRAIN, "VAL_TOKENS")),
    Case("val-tokens-reassigned", "val-constants",
         [T("args = Hyperparameters()\n", "args = Hyperparameters()\nargs.val_tokens //= 4\n")],
         (TRAIN, "args.val_tokens //= 4")),
    Case("val-tokens-removed", "val-constants",
         [T("    val_tokens: int = 10485760  # fixed so that every record is validated on the same tokens\n", ""),
          T("        assert args.val_tokens % args.val_batch_size == 0\n"
            "        val_steps = args.val_tokens // args.val_batch_size\n", "        val_steps = 2\n")],
         (TRAIN, None)),
    # train-files
    Case("train-on-validation-data", "train-files",
         [T('train_files: str = "data/fineweb10B/fineweb_train_*.bin"',
            'train_files: str = "data/fineweb10B/fineweb_*.bin"')],
         (TRAIN, "fineweb_*.bin")),
    # val-loader
    Case("val-loader-reused", "val-loader",
         [T(VAL_LOADER, ""),
          T("training_time_ms = 0\n", "training_time_ms = 0\n"
                                      "val_loader = distributed_data_generator(args.val_files, args.val_batch_size, "
                                      "rank, world_size)\n")],
         (TRAIN, LOOP)),
    Case("val-loader-timed", "val-loader",
         [T(STOP_CLOCK, ""),
          T("        val_loss /= val_steps\n", "        val_loss /= val_steps\n" + STOP_CLOCK)],
         (TRAIN, "val_loader = distributed_data_generator(args.val_files")),
    # val-reduce
    Case("val-loss-not-all-reduced", "val-reduce",
         [T("        dist.all_reduce(val_loss, op=dist.ReduceOp.AVG)\n", "")],
         (TRAIN, LOOP)),
    Case("val-loss-not-averaged", "val-reduce",
         [T("        val_loss /= val_steps\n", "")],
         (TRAIN, LOOP)),
    # warmup
    Case("warmup-shortened", "warmup",
         [T("warmup_steps = 30", "warmup_steps = 5")],
         (TRAIN, "for _ in range(warmup_steps):")),
    Case("warmup-not-restored", "warmup",
         [T("model.load_state_dict(initial_state[\"model\"])\n" + RESTORE_OPTS, "")],
         (TRAIN, "for _ in range(warmup_steps):")),
    Case("warmup-optimizers-not-restored", "warmup",
         [T(RESTORE_OPTS, "")],
         (TRAIN, "for _ in range(warmup_steps):")),
    Case("training-step-before-the-clock", "warmup",
         [T("del train_loader, initial_state\n",
            "inputs, targets = next(train_loader)\nmodel(inputs, targets).backward()  # head start\n"
            "for opt in optimizers:\n    opt.step()\ndel train_loader, initial_state\n")],
         (TRAIN, "# head start")),
    Case("training-loop-before-the-clock", "warmup",
         [T("del train_loader, initial_state\n",
            "for _ in range(100):  # head start\n    inputs, targets = next(train_loader)\n"
            "    model(inputs, targets).backward()\n"
            "    for opt in optimizers:\n        opt.step()\n    model.zero_grad(set_to_none=True)\n"
            "del train_loader, initial_state\n")],
         (TRAIN, "# head start")),
    Case("warmup-removed", "warmup",
         [T("for _ in range(warmup_steps):\n"
            "    inputs, targets = next(train_loader)\n"
            "    model(inputs, targets).backward()\n"
            "    for opt in optimizers:\n"
            "        opt.step()\n"
            "    model.zero_grad(set_to_none=True)\n", "")],
         (TRAIN, LOOP)),
    # timing-clock
    Case("no-sync-before-stop", "timing-clock",
         [T(STOP_CLOCK, "        training_time_ms += 1000 * (time.perf_counter() - t0)\n")],
         (TRAIN, "training_time_ms += 1000 * (time.perf_counter() - t0)")),
    Case("no-sync-before-restart", "timing-clock",
         [T(RESTART_CLOCK, "        t0 = time.perf_counter()\n")],
         (TRAIN, "        t0 = time.perf_counter()")),
    Case("clock-not-restarted", "timing-clock",
         [T(RESTART_CLOCK, "")],
         (TRAIN, "training_time_ms += 1000 * (time.perf_counter() - t0)")),
    Case("elapsed-time-scaled", "timing-clock",
         [T("training_time_ms += 1000 * (time.perf_counter() - t0)",
            "training_time_ms += 0.9 * 1000 * (time.perf_counter() - t0)")],
         (TRAIN, "0.9 * 1000")),
    Case("accumulator-reduced", "timing-clock",
         [T("        model.train()\n", "        model.train()\n        training_time_ms -= 250\n")],
         (TRAIN, "training_time_ms -= 250")),
    Case("start-time-shifted", "timing-clock",
         [T("    last_step = (step == train_steps)\n",
            "    last_step = (step == train_steps)\n    t0 += 0.001\n")],
         (TRAIN, "t0 += 0.001")),
    Case("data-loading-untimed", "timing-clock",
         [T("    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n    for opt in optimizers:\n"
            "        for group",
            "    torch.cuda.synchronize()\n    training_time_ms += 1000 * (time.perf_counter() - t0)  # pause\n"
            "    inputs, targets = next(train_loader)\n    torch.cuda.synchronize()\n    t0 = time.perf_counter()\n"
            "    model(inputs, targets).backward()\n    for opt in optimizers:\n        for group")],
         (TRAIN, "# pause")),
    Case("cpu-clock", "timing-clock",
         [T("training_time_ms += 1000 * (time.perf_counter() - t0)",
            "training_time_ms += 1000 * (time.process_time() - t0)")],
         (TRAIN, "time.process_time() - t0")),
    # fixed-steps
    Case("break-on-time", "fixed-steps",
         [T("    if last_step:\n        # the last step", "    if training_time_ms > 60_000:\n        break  # budget\n"
                                                         "    if last_step:\n        # the last step")],
         (TRAIN, "break  # budget")),
    Case("break-on-loss", "fixed-steps",
         [T("        model.train()\n", "        model.train()\n        if val_loss < 3.28:\n"
                                       "            break  # target reached\n")],
         (TRAIN, "break  # target reached")),
    Case("last-step-on-time", "fixed-steps",
         [T("    last_step = (step == train_steps)",
            "    last_step = (step == train_steps) or time.perf_counter() - t_start > 120"),
          T("        # the last step only validates\n        break", "        # the last step only validates\n"
                                                                 "        break  # last step")],
         (TRAIN, "break  # last step")),
    Case("while-on-time", "fixed-steps",
         [T(LOOP + "\n    last_step = (step == train_steps)",
            "step = 0\nwhile time.perf_counter() - t_start < 120:\n    step += 1\n    last_step = (step == train_steps)")],
         (TRAIN, "while time.perf_counter()")),
    Case("unbounded-loop", "fixed-steps",
         [T(LOOP, "for step in itertools.count():"), T("import copy\n", "import copy\nimport itertools\n")],
         (TRAIN, "itertools.count()")),
    Case("budget-moved-on-loss", "fixed-steps",
         [T("        model.train()\n", "        model.train()\n        if val_loss < 3.3:\n"
                                       "            train_steps = step + 1\n")],
         (TRAIN, "train_steps = step + 1")),
    # run-deps
    Case("pip-install", "run-deps",
         [R(LAUNCH, "pip install flash-attn --no-build-isolation\n" + LAUNCH)], (RUN, "pip install")),
    Case("python-m-pip", "run-deps",
         [R(LAUNCH, "python3 -m pip install -U triton && " + LAUNCH)], (RUN, "python3 -m pip")),
    Case("uv-pip", "run-deps",
         [R(LAUNCH, "uv pip install liger-kernel\n" + LAUNCH)], (RUN, "uv pip")),
    Case("apt-get", "run-deps",
         [R(LAUNCH, "sudo apt-get install -y libnccl2\n" + LAUNCH)], (RUN, "apt-get")),
    Case("conda", "run-deps",
         [R(LAUNCH, "conda install -y -c nvidia cuda-toolkit; " + LAUNCH)], (RUN, "conda install")),
    Case("subprocess-pip", "run-deps",
         [T("import copy\n", "import copy\nimport subprocess\n"
                             "subprocess.run([\"pip\", \"install\", \"torch==2.9.1\"], check=True)\n")],
         (TRAIN, "subprocess.run([\"pip\"")),
    Case("os-system-pip", "run-deps",
         [T("import copy\n", "import copy\nos.system(\"pip install --upgrade triton\")\n")],
         (TRAIN, "os.system")),
    # launch-shape
    Case("fewer-gpus", "launch-shape",
         [R("--nproc_per_node=8", "--nproc_per_node=4")], (RUN, "--nproc_per_node=4")),
    Case("no-standalone", "launch-shape",
         [R("torchrun --standalone ", "torchrun ")], (RUN, "torchrun --nproc")),
    Case("two-nodes", "launch-shape",
         [R("--nproc_per_node=8", "--nproc_per_node=8 --nnodes=2")], (RUN, "--nnodes=2")),
    Case("visible-devices", "launch-shape",
         [R(LAUNCH, "CUDA_VISIBLE_DEVICES=0,1,2,3 " + LAUNCH)], (RUN, "CUDA_VISIBLE_DEVICES")),
    Case("visible-devices-exported", "launch-shape",
         [R(LAUNCH, "export CUDA_VISIBLE_DEVICES=0\n" + LAUNCH)], (RUN, LAUNCH)),
    Case("not-torchrun", "launch-shape",
         [R(LAUNCH, "python train_gpt.py")], (RUN, None)),
    Case("run-sh-missing", "launch-shape", [], (RUN, None), removed_files=(RUN,)),
]

def _expected_line(folder: Path, case: Case) -> int:
    assert case.where is not None
    file, snippet = case.where
    return 0 if snippet is None else line_of(folder, file, snippet)


@pytest.mark.parametrize("case", VIOLATIONS, ids=[c.name for c in VIOLATIONS])
def test_violating_variant_is_flagged_at_its_line(tmp_path: Path, case: Case) -> None:
    candidate = make_variant(tmp_path, case)
    anchor = case.base
    report = check_rules(anchor, candidate)
    assert not report.ok, f"{case.name}: expected a {case.rule} violation\n{describe(report)}"
    assert {v.rule for v in report.violations} == {case.rule}, describe(report)
    file, _ = case.where  # type: ignore[misc]
    line = _expected_line(candidate, case)
    assert any(v.file == file and v.line == line for v in report.violations), \
        f"{case.name}: expected {file}:{line}\n{describe(report)}"
    for v in report.violations:
        assert v.message.endswith("."), v.message
        assert "\n" not in v.message


# -----------------------------------------------------------------------------
# Legitimate variants: real-world refactors and speedups that must pass.

LEGIT: list[Case] = [
    Case("anchor-against-itself", "all", []),
    Case("refactored-record", "all", [], base=REFACTOR),
    Case("broken-scratch-file-not-imported", "syntax", [], extra_files={"scratch.py": "def oops(:\n"}),
    Case("new-compile-sites-with-anchor-flags", "compile-flags",
         [T("def norm(x: Tensor) -> Tensor:", "@torch.compile(dynamic=False, fullgraph=True)\n"
                                              "def norm(x: Tensor) -> Tensor:"),
          T("class MLP(nn.Module):", "@torch.compile\ndef relu2(x: Tensor) -> Tensor:\n    return F.relu(x).square()\n\n\n"
                                     "class MLP(nn.Module):")]),
    Case("fewer-compile-sites", "compile-flags",
         [T("@torch.compile(dynamic=False, fullgraph=True)\ndef zeropower", "def zeropower")]),
    Case("compile-flags-from-a-dict", "compile-flags",
         [T(MODEL_COMPILE, "COMPILE_FLAGS = {\"fullgraph\": True, \"dynamic\": False}\n"
                           "model: nn.Module = torch.compile(model, **COMPILE_FLAGS)")]),
    Case("config-read-and-other-env", "compiler-config",
         [T('os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"\n',
            'os.environ["PYTORCH_ALLOC_CONF"] = "expandable_segments:True"\nos.environ["NCCL_DEBUG"] = "WARN"\n'),
          T("dynamo.config.recompile_limit = 64\n",
            "dynamo.config.recompile_limit = 64\nassert not torch._inductor.config.max_autotune\n")]),
    Case("recompile-limit-other-spelling", "recompile-limit",
         [T("import torch._dynamo as dynamo\ndynamo.config.recompile_limit = 64",
            "from torch._dynamo import config as dynamo_config\ndynamo_config.cache_size_limit = 64")]),
    Case("coordinate-descent-explicitly-off", "coordinate-descent",
         [T("#torch._inductor.config.coordinate_descent_tuning = True",
            "torch._inductor.config.coordinate_descent_tuning = False")]),
    Case("val-constants-respelled", "val-constants",
         [T("val_tokens: int = 10485760", "val_tokens: int = 10_485_760"),
          T("val_batch_size: int = 4 * 64 * 1024 * 8", "val_batch_size: int = 2_097_152"),
          T("args = Hyperparameters()", "args = Hyperparameters(val_tokens=10485760, num_iterations=1600)")]),
    Case("hyperparameters-changed", "fixed-steps",
         [T("num_iterations: int = 1750", "num_iterations: int = 1480"),
          T("val_loss_every: int = 125", "val_loss_every: int = 250"),
          T("cooldown_frac: float = 0.45", "cooldown_frac: float = 0.6"),
          T("lr=0.008, betas=(0.8, 0.95)", "lr=0.006, betas=(0.65, 0.95)")]),
    Case("train-files-passed-through", "train-files",
         [T("def _load_data_shard(file: Path) -> Tensor:",
            "class Shards:\n    def __init__(self, train_files: str):\n        self.train_files = train_files\n\n\n"
            "def _load_data_shard(file: Path) -> Tensor:"),
          T("args = Hyperparameters()\n", "args = Hyperparameters()\nshards = Shards(train_files=args.train_files)\n")]),
    Case("val-loader-in-helper", "val-loader",
         [T(VAL_LOADER, "        val_loader = make_val_loader()\n"),
          T("def print0(", "def make_val_loader():\n    return distributed_data_generator(args.val_files, "
                           "args.val_batch_size, rank, world_size)\n\n\ndef print0(")]),
    Case("val-loss-reduce-to-rank-0", "val-reduce",
         [T("dist.all_reduce(val_loss, op=dist.ReduceOp.AVG)", "dist.reduce(val_loss, 0, op=dist.ReduceOp.AVG)")]),
    Case("val-loss-summed-then-divided", "val-reduce",
         [T("        val_loss /= val_steps\n", ""),
          T("        dist.all_reduce(val_loss, op=dist.ReduceOp.AVG)\n",
            "        dist.all_reduce(val_loss, op=dist.ReduceOp.SUM)\n"
            "        val_loss /= val_steps * world_size\n")]),
    Case("warmup-inline-literal", "warmup",
         [T("for _ in range(warmup_steps):", "for _ in range(30):")]),
    Case("warmup-in-a-function", "warmup",
         [T("for _ in range(warmup_steps):\n"
            "    inputs, targets = next(train_loader)\n"
            "    model(inputs, targets).backward()\n"
            "    for opt in optimizers:\n"
            "        opt.step()\n"
            "    model.zero_grad(set_to_none=True)\n",
            "def warm_up_kernels(loader, n):\n"
            "    for _ in range(n):\n"
            "        inputs, targets = next(loader)\n"
            "        model(inputs, targets).backward()\n"
            "        for opt in optimizers:\n"
            "            opt.step()\n"
            "        model.zero_grad(set_to_none=True)\n\n\n"
            "warm_up_kernels(train_loader, warmup_steps)\n")]),
    Case("wall-clock-time-time", "timing-clock",
         [T("training_time_ms += 1000 * (time.perf_counter() - t0)", "training_time_ms += (time.time() - t0) * 1e3"),
          T("t0 = time.perf_counter()\ntrain_steps", "t0 = time.time()\ntrain_steps"),
          T(RESTART_CLOCK, "        torch.cuda.synchronize()\n        t0 = time.time()\n")]),
    Case("clock-helpers-with-globals", "timing-clock",
         [T(STOP_CLOCK, "        pause_clock()\n"),
          T(RESTART_CLOCK, "        resume_clock()\n"),
          T("def print0(", "def pause_clock():\n    global training_time_ms\n    torch.cuda.synchronize()\n"
                           "    training_time_ms += 1000 * (time.perf_counter() - t0)\n\n\n"
                           "def resume_clock():\n    global t0\n    torch.cuda.synchronize()\n"
                           "    t0 = time.perf_counter()\n\n\ndef print0(")]),
    Case("while-loop-with-fixed-count", "fixed-steps",
         [T(LOOP + "\n    last_step = (step == train_steps)",
            "step = 0\nwhile step <= train_steps:\n    last_step = (step == train_steps)"),
          T("    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n    for opt in optimizers:\n"
            "        for group",
            "    step += 1\n    inputs, targets = next(train_loader)\n    model(inputs, targets).backward()\n"
            "    for opt in optimizers:\n        for group")]),
    Case("skip-logging-on-schedule", "fixed-steps",
         [T("    approx_training_time_ms = training_time_ms",
            "    if step % 10 != 0:\n        continue\n    approx_training_time_ms = training_time_ms")]),
    Case("run-sh-mentions-pip", "run-deps",
         [R(LAUNCH, "# pip install -r requirements.txt is done by the image, not here\n"
                    "echo \"no pip install here\"\npip list > logs/packages.txt\npython -m pip freeze\n" + LAUNCH)]),
    Case("val-pattern-in-a-variable", "val-loader",
         [T("args = Hyperparameters()\n", "args = Hyperparameters()\nval_pattern = args.val_files\n"),
          T(VAL_LOADER, "        val_loader = distributed_data_generator(val_pattern, args.val_batch_size, rank, "
                        "world_size)\n")]),
    Case("data-folder-joined-with-pathlib", "train-files",
         [T("args.train_files = os.path.join(data_path, args.train_files)",
            "args.train_files = str(Path(data_path) / args.train_files)"),
          T("args.val_files = os.path.join(data_path, args.val_files)", "args.val_files = f\"{data_path}/{args.val_files}\"")]),
    Case("launch-respelled", "launch-shape",
         [R(LAUNCH, "export NCCL_DEBUG=WARN\nOMP_NUM_THREADS=8 python -m torch.distributed.run \\\n"
                    "    --nproc-per-node 8 --standalone train_gpt.py 2>&1 | tee logs/run.txt")]),
]


@pytest.mark.parametrize("case", LEGIT, ids=[c.name for c in LEGIT])
def test_legitimate_variant_passes(tmp_path: Path, case: Case) -> None:
    candidate = make_variant(tmp_path, case)
    report = check_rules(ANCHOR, candidate)
    assert report.ok, f"{case.name} must pass\n{describe(report)}"


def test_every_rule_has_a_violating_and_a_legitimate_variant() -> None:
    assert {c.rule for c in VIOLATIONS} == RULE_IDS
    assert RULE_IDS <= {c.rule for c in LEGIT}


def test_training_inside_a_main_function_passes(tmp_path: Path) -> None:
    # Wrap everything from the timed section on into `def main()`, called under `if __name__ == "__main__"`.
    candidate = make_variant(tmp_path, Case("main", "all", []))
    text = (candidate / TRAIN).read_text()
    marker = "train_loader = distributed_data_generator(args.train_files, args.train_batch_size, rank, world_size)\n" \
             "training_time_ms = 0\n"
    head, tail = text.split(marker)
    body = "".join("    " + line if line.strip() else line for line in (marker + tail).splitlines(keepends=True))
    (candidate / TRAIN).write_text(head + "def main():\n" + body + "\n\nif __name__ == \"__main__\":\n    main()\n")
    report = check_rules(ANCHOR, candidate)
    assert report.ok, describe(report)
    # ... and a cheat inside it is still found there.
    text = (candidate / TRAIN).read_text()
    assert text.count("            model.train()\n") == 1
    (candidate / TRAIN).write_text(text.replace(
        "            model.train()\n", "            model.train()\n            training_time_ms -= 1\n"))
    report = check_rules(ANCHOR, candidate)
    assert [(v.rule, v.line) for v in report.violations] == \
        [("timing-clock", line_of(candidate, TRAIN, "training_time_ms -= 1"))], describe(report)


def test_pathological_nesting_is_reported_not_crashed(tmp_path: Path) -> None:
    case = Case("deep", "syntax", [], extra_files={TRAIN: "x = 1\ny = " + " + ".join(["a"] * 30000) + "\n"})
    report = check_rules(ANCHOR, make_variant(tmp_path / "a", case))
    assert [(v.rule, v.line) for v in report.violations] == [("syntax", 0)], describe(report)
    case = Case("deeper", "syntax", [], extra_files={TRAIN: "x = " + "-" * 50000 + "1\n"})
    report = check_rules(ANCHOR, make_variant(tmp_path / "b", case))
    assert [(v.rule, v.file) for v in report.violations] == [("syntax", TRAIN)], describe(report)


def test_entry_linked_from_outside_the_folder_is_read(tmp_path: Path) -> None:
    candidate = tmp_path / "linked"
    candidate.mkdir()
    shutil.copy(ANCHOR / RUN, candidate / RUN)
    (candidate / TRAIN).symlink_to(ANCHOR / TRAIN)
    assert check_rules(ANCHOR, candidate).ok


def test_refactored_record_is_accepted_both_ways() -> None:
    assert check_rules(ANCHOR, REFACTOR).ok
    # Going back from the refactor to the anchor adds `os.path.join(data_path, ...)` with DATA_PATH unset (".")
    # in front of the data patterns: the same files, however spelled, so nothing is reported.
    report = check_rules(REFACTOR, ANCHOR)
    assert report.ok, describe(report)


@pytest.mark.parametrize(("edit", "rule"), [
    # run.sh points DATA_PATH elsewhere: the patterns now name other files.
    (R(LAUNCH, "export DATA_PATH=/tmp/other\n" + LAUNCH), "val-constants"),
    # A folder read from a variable the run sets (HOME): not resolvable, so spelled differently is reported.
    (T('data_path = os.environ.get("DATA_PATH", ".")', 'data_path = os.environ.get("HOME", ".")'), "train-files"),
    # A folder of the workspace, which the agent can fill with shards of its own.
    (T('val_files: str = "data/fineweb10B/fineweb_val_*.bin"', 'val_files: str = "holdout/fineweb_val_*.bin"'),
     "val-constants"),
])
def test_data_files_are_compared_by_what_they_resolve_to(tmp_path: Path, edit, rule) -> None:
    report = check_rules(REFACTOR, make_variant(tmp_path, Case("data-path", rule, [edit])))
    assert rule in {v.rule for v in report.violations}, describe(report)


def test_a_violation_hidden_in_the_refactored_record_is_still_found(tmp_path: Path) -> None:
    # The refactor moves validation into `evaluate`; halving the steps there must still be caught.
    case = Case("refactor-no-reduce", "val-reduce",
                [T("    dist.reduce(val_loss, 0, op=dist.ReduceOp.AVG)\n", "")], base=REFACTOR)
    report = check_rules(ANCHOR, make_variant(tmp_path, case))
    assert [v.rule for v in report.violations] == ["val-reduce"], describe(report)


def test_clock_tampering_at_module_level_is_found_with_clock_helpers(tmp_path: Path) -> None:
    case = Case("refactor-tamper", "timing-clock",
                [T("        start_clock()\n    if last_step:", "        start_clock()\n        training_time_ms -= 100\n"
                                                              "    if last_step:")], base=REFACTOR)
    candidate = make_variant(tmp_path, case)
    report = check_rules(ANCHOR, candidate)
    assert [(v.rule, v.line) for v in report.violations] == \
        [("timing-clock", line_of(candidate, TRAIN, "training_time_ms -= 100"))], describe(report)


def test_run_sh_pointing_at_another_script_is_checked(tmp_path: Path) -> None:
    # The launched script, not train_gpt.py, is what the rules read.
    other = (ANCHOR / TRAIN).read_text().replace("warmup_steps = 30", "warmup_steps = 3")
    case = Case("other-entry", "warmup", [R("train_gpt.py", "train_fast.py")], extra_files={"train_fast.py": other})
    report = check_rules(ANCHOR, make_variant(tmp_path, case))
    assert [(v.rule, v.file) for v in report.violations] == [("warmup", "train_fast.py")], describe(report)


def test_an_install_the_anchor_already_runs_is_not_flagged(tmp_path: Path) -> None:
    anchor_case = Case("anchor-with-install", "run-deps", [R(LAUNCH, "pip install -e .\n" + LAUNCH)])
    anchor = make_variant(tmp_path / "a", anchor_case)
    candidate = make_variant(tmp_path / "c", anchor_case)
    assert check_rules(anchor, candidate).ok


def test_an_anchor_without_a_fact_does_not_demand_it(tmp_path: Path) -> None:
    # An anchor that neither sets recompile_limit nor compiles the model: the candidate may do the same.
    case = Case("bare", "all", [T("dynamo.config.recompile_limit = 64\n", ""),
                                T(MODEL_COMPILE + "\n", "")])
    bare = make_variant(tmp_path / "a", case)
    assert check_rules(bare, make_variant(tmp_path / "c", case)).ok


# -----------------------------------------------------------------------------
# The smoke record written for this repository (a tiny speedrun-style record)


@pytest.mark.skipif(not (SMOKE / TRAIN).is_file(), reason="human_baselines/smoke/train_gpt.py is not there yet")
def test_smoke_record_passes_against_itself() -> None:
    report = check_rules(SMOKE, SMOKE)
    assert report.ok, describe(report)


@pytest.mark.skipif(not (SMOKE / TRAIN).is_file(), reason="human_baselines/smoke/train_gpt.py is not there yet")
def test_obvious_violations_in_a_copy_of_the_smoke_record_are_caught(tmp_path: Path) -> None:
    candidate = tmp_path / "smoke"
    shutil.copytree(SMOKE, candidate, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    script, run = candidate / TRAIN, candidate / RUN
    # The smoke record is maintained separately; find its values rather than assuming them.
    val_tokens = re.search(r"^\s*val_tokens\s*(?::\s*int\s*)?=\s*([\d_]+)", script.read_text(), re.MULTILINE)
    nproc = re.search(r"--nproc[_-]per[_-]node[= ](\d+)", run.read_text())
    assert val_tokens and nproc
    script.write_text(script.read_text().replace(val_tokens.group(0), val_tokens.group(0).replace(
        val_tokens.group(1), "4096"), 1))
    run.write_text(run.read_text().replace(nproc.group(0), nproc.group(0).replace(nproc.group(1),
                                                                                 str(int(nproc.group(1)) + 1))))
    report = check_rules(SMOKE, candidate)
    assert {v.rule for v in report.violations} == {"val-constants", "launch-shape"}, describe(report)
    line = line_of(candidate, TRAIN, val_tokens.group(0).strip().replace(val_tokens.group(1), "4096"))
    assert any(v.rule == "val-constants" and v.line == line for v in report.violations), describe(report)


# -----------------------------------------------------------------------------
# Bad input, output, determinism


def test_missing_folders_and_scripts_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        check_rules(tmp_path / "nope", ANCHOR)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="has no train_gpt.py"):
        check_rules(ANCHOR, empty)
    with pytest.raises(UserError, match="not a folder"):
        check_rules(ANCHOR, ANCHOR / TRAIN)


def test_an_anchor_that_does_not_parse_is_bad_input(tmp_path: Path) -> None:
    case = Case("broken-anchor", "syntax", [T("def norm(x: Tensor) -> Tensor:", "def norm(x: Tensor) -> Tensor")])
    with pytest.raises(UserError, match="anchor's train_gpt.py does not parse"):
        check_rules(make_variant(tmp_path, case), ANCHOR)


def test_report_is_sorted_deterministic_and_json_shaped(tmp_path: Path) -> None:
    case = Case("several", "many", [
        T("val_tokens: int = 10485760", "val_tokens: int = 5242880"),
        T("#torch._inductor.config.coordinate_descent_tuning = True",
          "torch._inductor.config.coordinate_descent_tuning = True"),
        R("--nproc_per_node=8", "--nproc_per_node=4"),
    ])
    candidate = make_variant(tmp_path, case)
    first, second = check_rules(ANCHOR, candidate), check_rules(ANCHOR, candidate)
    assert first.to_json() == second.to_json()
    keys = [(v.file, v.line) for v in first.violations]
    assert keys == sorted(keys)
    data = json.loads(first.to_json())
    assert data["ok"] is False
    assert [set(v) for v in data["violations"]] == [{"rule", "file", "line", "message"}] * 3
    assert {v["rule"] for v in data["violations"]} == {"val-constants", "coordinate-descent", "launch-shape"}


def test_rules_table_is_complete_and_documented() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.description.endswith(".") for r in RULES)
    docs = (REPO / "docs" / "rules.md").read_text()
    for rule_id in ids:
        assert f"`{rule_id}`" in docs, f"docs/rules.md does not describe {rule_id}"


def test_rules_module_imports_no_heavy_libraries() -> None:
    code = ("import sys, nanogpt_tui.validator.rules\n"
            "heavy = {'torch', 'textual', 'docker', 'rich', 'anthropic', 'openai'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# -----------------------------------------------------------------------------
# The command line


def test_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-rules", "--anchor", str(ANCHOR), str(REFACTOR), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["violations"] == []
    # The refactor's set-based warm-up cannot be counted against the anchor's 30 steps: a question for the judge.
    assert [(q["rule"], q["line"]) for q in data["needs_judge"]] == [("warmup", line_of(REFACTOR, TRAIN, "for step in warmup_steps:"))]
    assert "this one is not a constant count" in data["needs_judge"][0]["message"]

    case = Case("cli", "val-constants", [T("val_tokens: int = 10485760", "val_tokens: int = 5242880")])
    candidate = make_variant(tmp_path, case)
    assert main(["check-rules", "--anchor", str(ANCHOR), str(candidate), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["violations"][0]["rule"] == "val-constants"
    assert data["violations"][0]["file"] == "train_gpt.py"

    assert main(["check-rules", "--anchor", str(ANCHOR), str(candidate)]) == 1
    out = capsys.readouterr().out
    assert f"train_gpt.py:{line_of(candidate, TRAIN, 'val_tokens: int = 5242880')}: [val-constants]" in out
    assert "1 violation of the static rules." in out


def test_cli_bad_input_exits_2_with_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-rules", "--anchor", str(tmp_path / "missing"), str(ANCHOR)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanogpt-tui: error: The anchor folder") and err.endswith(".")
    assert err.count("\n") == 0
