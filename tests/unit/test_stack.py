"""A record's stack: read from its log, compared with an image's, and turned into a `docker build` plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.records import load_timeline
from nanogpt_tui.stack import (
    ATTENTION_FA3_BUILD, ATTENTION_FLEX, ATTENTION_KERNEL_HUB, BUILD_CONTEXT, Stack, compare_stacks,
    must_match_mismatches, plan_image, stack_from_log,
)
from tests.fakes.record_logs import NVIDIA_SMI_H100, log_of

REPO = Path(__file__).resolve().parents[2]
HUB_MAIN = ("from kernels import get_kernel\n"
            "flash_attn_interface = get_kernel('kernels-community/flash-attn3', version=1).flash_attn_interface\n"
            "import tiktoken\nenc = tiktoken.get_encoding(\"gpt2\")\n")
ENV_2026 = ("Running Python 3.12.3 (main, Jan 22 2026, 20:57:42) [GCC 13.3.0]\n"
            "Running PyTorch 2.10.0+cu128 compiled for CUDA 12.8\nRunning Triton version 3.6.0\n")


def test_stack_from_a_2026_style_log():
    log = log_of({"train_gpt.py": "import triton_kernels\n", "triton_kernels.py": HUB_MAIN}, env=ENV_2026)
    stack = stack_from_log(log, {"train_gpt.py": "import triton_kernels\n", "triton_kernels.py": HUB_MAIN})
    assert stack == Stack(python="3.12.3", torch="2.10.0+cu128", cuda="12.8", triton="3.6.0",
                          gpu="2x NVIDIA H100 80GB HBM3", attention=ATTENTION_KERNEL_HUB,
                          kernel_repo="kernels-community/flash-attn3", kernel_version="1", tiktoken="gpt2")
    assert Stack.from_manifest(stack.manifest_values()) == stack


def test_stack_from_older_logs():
    fa3 = {"train_gpt.py": "from flash_attn_interface import flash_attn_varlen_func\n"}
    assert stack_from_log(log_of(fa3), fa3).attention == ATTENTION_FA3_BUILD
    flex = {"train_gpt.py": "from torch.nn.attention.flex_attention import BlockMask, flex_attention\n"}
    old = stack_from_log(log_of(flex, env="Running Python 3.12.7\nRunning PyTorch 2.6.0.dev20241231+cu126 "
                                          "compiled for CUDA 12.6\n", smi=NVIDIA_SMI_H100), flex)
    assert (old.attention, old.triton, old.torch) == (ATTENTION_FLEX, "", "2.6.0.dev20241231+cu126")
    # GPUs named only in the run's own output (after the second `=` line) are not the environment's.
    assert stack_from_log("x\n" + "=" * 100 + "\nRunning PyTorch 2.1 compiled for CUDA 12.1\n" + "=" * 100 +
                          "\n|   0  NVIDIA H200   On  |\n", {}).gpu == ""


def test_must_match_fields():
    anchor = Stack(python="3.10.12", torch="2.9.0.dev20250718+cu126", cuda="12.6", triton="3.4.0",
                   attention=ATTENTION_FA3_BUILD)
    same_line = Stack(python="3.12", torch="2.9.0+cu126", cuda="12.6", triton="3.4.0", attention=ATTENTION_FA3_BUILD)
    assert {m.field for m in compare_stacks(anchor, same_line)} == {"torch", "python"}
    assert must_match_mismatches(anchor, same_line) == []
    newer = Stack(python="3.12", torch="2.10.0+cu128", cuda="13.0", triton="3.6.0", attention=ATTENTION_KERNEL_HUB,
                  kernel_repo="varunneal/flash-attention-3")
    assert {m.field for m in must_match_mismatches(anchor, newer)} == {"torch", "cuda", "triton", "attention"}
    # A patch release of Triton and another CUDA minor may differ.
    assert must_match_mismatches(Stack(torch="2.10.0+cu126", cuda="12.6", triton="3.5.0"),
                                 Stack(torch="2.10.1+cu128", cuda="12.8", triton="3.5.1")) == []


def test_labels_round_trip_and_an_unlabelled_image_states_nothing():
    stack = Stack(python="3.12", torch="2.10.0+cu128", cuda="12.8", triton="3.6.0", attention=ATTENTION_KERNEL_HUB,
                  kernel_repo="kernels-community/flash-attn3", kernel_version="1", tiktoken="gpt2")
    assert Stack.from_labels(stack.labels()) == stack
    assert Stack.from_labels({"org.opencontainers.image.title": "x"}) is None


def test_the_dockerfile_states_every_label_and_build_argument_a_plan_uses():
    dockerfile = (REPO / "image" / "Dockerfile").read_text()
    assert "# syntax=" not in dockerfile  # the classic builder must not pull a frontend image
    timeline = load_timeline(REPO / "human_baselines")
    plan = plan_image("2026-07-17_FP8DownProjection", timeline.get("2026-07-17_FP8DownProjection").stack)
    for arg in plan.build_args:
        assert f"ARG {arg}=" in dockerfile, arg
    for label in plan.image_stack.labels():
        assert f"{label}=" in dockerfile, label
    for path in BUILD_CONTEXT:
        assert (REPO / path).exists(), path


def test_plans_for_fa3_and_fp8_down_projection_differ_as_their_logs_do():
    timeline = load_timeline(REPO / "human_baselines")
    fa3 = plan_image("2025-09-03_FA3", timeline.get("2025-09-03_FA3").stack)
    fp8 = plan_image("2026-07-17_FP8DownProjection", timeline.get("2026-07-17_FP8DownProjection").stack)
    assert fa3.build_args["TORCH_VERSION"] == "2.9.0+cu126" and fa3.build_args["TRITON_VERSION"] == "3.4.0"
    assert fa3.build_args["ATTENTION"] == ATTENTION_FA3_BUILD and "closest obtainable" in " ".join(fa3.notes)
    assert fp8.build_args["TORCH_VERSION"] == "2.10.0+cu128" and fp8.build_args["CUDA_IMAGE"].startswith(
        "nvidia/cuda:12.8")
    assert fp8.build_args["HF_KERNELS"] == "kernels-community/flash-attn3" and fp8.mismatches == []
    assert not any(m.must_match for m in fa3.mismatches)
    exact = plan_image("2025-09-03_FA3", timeline.get("2025-09-03_FA3").stack, exact=True)
    assert exact.build_args["TORCH_VERSION"] == "2.9.0.dev20250718+cu126" and "nightly" in \
        exact.build_args["TORCH_INDEX_URL"]
    assert fa3.command().endswith(" -") and "docker build -f image/Dockerfile" in fa3.command()
    with pytest.raises(ValueError, match="states no PyTorch version"):
        plan_image("x", Stack())


def test_dockerfile_defaults_are_the_fa3_plan():
    dockerfile = (REPO / "image" / "Dockerfile").read_text()
    timeline = load_timeline(REPO / "human_baselines")
    plan = plan_image("2025-09-03_FA3", timeline.get("2025-09-03_FA3").stack)
    for arg in ("CUDA_IMAGE", "TORCH_VERSION", "TORCH_INDEX_URL", "CUDA_VERSION", "TRITON_VERSION", "ATTENTION",
                "STACK_RECORD"):
        assert f"ARG {arg}={plan.build_args[arg]}\n" in dockerfile, arg
