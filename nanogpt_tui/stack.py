"""A record's software stack (Python, PyTorch, CUDA, Triton, GPU, how FlashAttention is loaded), as its log states
it; which fields an image must share with its anchor; the image labels and `docker build` plan for a stack."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from nanogpt_tui.record_grammar import parse_newer

# How a record gets its attention kernel.
ATTENTION_KERNEL_HUB = "kernel-hub"            # kernels.get_kernel("<repo>") at import time
ATTENTION_FA3_BUILD = "flash_attn_interface"   # a FlashAttention-3 wheel built from source (import flash_attn_interface)
ATTENTION_FLEX = "flex_attention"              # PyTorch's own flex_attention
ATTENTION_NONE = ""

# Image labels: the stack an image was built with (the Dockerfile checks each against what it installed).
LABEL_PREFIX = "org.nanogpt-bench.stack."
# An image outside the stack check says so with this label: the CPU test image, which runs the smoke track and
# the tests, not a record's stack.
LABEL_OUTSIDE_CHECK = "nanogpt-tui.test-image"

_PYTHON = re.compile(r"^Running Python (\S+)", re.M)
_TORCH = re.compile(r"^Running PyTorch (\S+) compiled for CUDA (\S+)", re.M)
_TRITON = re.compile(r"^Running Triton version (\S+)", re.M)
_GPU_ROW = re.compile(r"^\|\s+(\d+)\s+(NVIDIA .*?)\s+(?:On|Off)\s+\|", re.M)


@dataclass(frozen=True)
class Stack:
    """The software a record ran with. Empty strings are fields the log does not state."""

    python: str = ""
    torch: str = ""            # as torch.__version__ printed it, e.g. 2.10.0+cu128 or 2.9.0.dev20250718+cu126
    cuda: str = ""             # torch.version.cuda, e.g. 12.8
    triton: str = ""
    gpu: str = ""              # e.g. "8x NVIDIA H100 80GB HBM3" (where it ran, not part of an image)
    attention: str = ""        # one of the ATTENTION_* values
    kernel_repo: str = ""      # the kernel-hub repository for ATTENTION_KERNEL_HUB
    kernel_version: str = ""   # get_kernel(..., version=N), when the record pins one
    tiktoken: str = ""         # encodings the code loads at import (tiktoken.get_encoding), space-separated

    # --- the manifest ---------------------------------------------------------------------------------------

    def manifest_values(self) -> dict[str, str]:
        return {f"env_{f.name}": getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_manifest(cls, row: Mapping[str, str]) -> "Stack":
        return cls(**{f.name: row.get(f"env_{f.name}", "").strip() for f in fields(cls)})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def stated(self) -> bool:
        return bool(self.torch)

    # --- images ---------------------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """The image labels for this stack (the fields an image holds; the GPU is the host's)."""
        return {f"{LABEL_PREFIX}{f.name.replace('_', '-')}": getattr(self, f.name)
                for f in fields(self) if f.name != "gpu"}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> "Stack | None":
        """The stack an image's labels state, or None when it states none."""
        values = {f.name: labels.get(f"{LABEL_PREFIX}{f.name.replace('_', '-')}", "") for f in fields(cls)}
        return cls(**values) if values["torch"] else None


ENV_COLUMNS = tuple(f"env_{f.name}" for f in fields(Stack))


# --- reading a log ---------------------------------------------------------------------------------------------


def stack_from_log(log_text: str, files: Mapping[str, str]) -> Stack:
    """The stack a training log states after its code section, and how the record's code loads attention."""
    python = _first(_PYTHON, log_text)
    torch_match = _TORCH.search(log_text)
    gpus = [m.group(2).strip() for m in _GPU_ROW.finditer(_nvidia_smi_part(log_text))]
    gpu = ""
    if gpus:
        names = sorted(set(gpus))
        gpu = f"{len(gpus)}x {names[0]}" if len(names) == 1 else ", ".join(f"{gpus.count(n)}x {n}" for n in names)
    attention, repo, version, encodings = attention_of(files)
    return Stack(python=python, torch=torch_match.group(1) if torch_match else "",
                 cuda=torch_match.group(2) if torch_match else "", triton=_first(_TRITON, log_text), gpu=gpu,
                 attention=attention, kernel_repo=repo, kernel_version=version, tiktoken=" ".join(encodings))


def _first(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(text)
    return match.group(1) if match else ""


def _nvidia_smi_part(log_text: str) -> str:
    """The first nvidia-smi table: between the first and second lines of `=` (the run's own output can hold
    anything)."""
    parts = re.split(r"^=+$", log_text, maxsplit=2, flags=re.M)
    return parts[1] if len(parts) > 1 else ""


def attention_of(files: Mapping[str, str]) -> tuple[str, str, str, list[str]]:
    """(how attention is loaded, kernel repo, kernel version, tiktoken encodings) from the record's Python files."""
    attention, repo, version = ATTENTION_NONE, "", ""
    encodings: list[str] = []
    flex = False
    for name, text in files.items():
        if not name.endswith(".py"):
            continue
        try:
            tree = parse_newer(text, name)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = _dotted(node.func)
                if callee.split(".")[-1] == "get_kernel" and node.args and _is_str(node.args[0]):
                    repo = repo or node.args[0].value
                    attention = ATTENTION_KERNEL_HUB
                    for kw in node.keywords:
                        if kw.arg in ("version", "revision") and isinstance(kw.value, ast.Constant):
                            version = version or str(kw.value.value)
                elif callee.endswith("tiktoken.get_encoding") and node.args and _is_str(node.args[0]):
                    encodings.append(node.args[0].value)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(m.split(".")[0] == "flash_attn_interface" for m in modules) and not attention:
                    attention = ATTENTION_FA3_BUILD
                if any("flex_attention" in m for m in modules) or (
                        isinstance(node, ast.ImportFrom) and any(a.name == "flex_attention" for a in node.names)):
                    flex = True
    if not attention and flex:
        attention = ATTENTION_FLEX
    return attention, repo, version, sorted(set(encodings))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


# --- what must match -------------------------------------------------------------------------------------------


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def _major(version: str) -> str:
    return version.split(".")[0]


@dataclass(frozen=True)
class FieldRule:
    """One stack field: whether an image must share it with its anchor, on what part, and why."""

    field: str
    must_match: bool
    key: object  # a function of the value giving the part compared
    why: str


FIELD_RULES: tuple[FieldRule, ...] = (
    FieldRule("torch", True, _major_minor, "PyTorch major.minor: Inductor's code generation and compile behaviour "
                                           "change between minor releases; the nightly build date may differ"),
    FieldRule("cuda", True, _major, "CUDA major: kernels and wheels are built per major; the minor may differ"),
    FieldRule("triton", True, _major_minor, "Triton major.minor: the records' own kernels and Inductor's are "
                                            "written against it; the patch may differ"),
    FieldRule("attention", True, str, "how FlashAttention is loaded (kernel hub, a source build, flex_attention): "
                                      "a different path is different code"),
    FieldRule("kernel_repo", True, str, "the kernel-hub repository FlashAttention comes from"),
    FieldRule("python", False, _major_minor, "Python may differ: nanogpt-tui needs 3.11+, and the training code "
                                             "runs the same on 3.10 to 3.12"),
    FieldRule("kernel_version", False, str, "the kernel version pin is in the record's code, so it follows it"),
    FieldRule("tiktoken", False, str, "tiktoken encodings: the image prefetches what the anchor loads"),
    FieldRule("gpu", False, str, "the GPU is the host's, not the image's; sessions compare on one host"),
)


@dataclass(frozen=True)
class Mismatch:
    field: str
    anchor: str
    image: str
    must_match: bool
    why: str

    def sentence(self) -> str:
        return f"{self.field}: the anchor ran {self.anchor or '(none)'}, the image has {self.image or '(none)'}"


def compare_stacks(anchor: Stack, image: Stack) -> list[Mismatch]:
    """Every field where the image differs from the anchor; `must_match` is set where the difference is on the
    part a must-match field compares (a nightly and the release of the same major.minor differ, but may)."""
    out = []
    for rule in FIELD_RULES:
        a, i = getattr(anchor, rule.field), getattr(image, rule.field)
        if rule.field == "gpu" or not a or a == i:
            continue  # a field the anchor's log does not state cannot be demanded; the GPU is the host's
        differs = rule.key(a) != rule.key(i)  # type: ignore[operator]
        if not rule.must_match and not differs:
            continue  # e.g. Python 3.12.3 and 3.12
        breaks = rule.must_match and differs
        out.append(Mismatch(rule.field, a, i, breaks, rule.why))
    return out


def must_match_mismatches(anchor: Stack, image: Stack) -> list[Mismatch]:
    return [m for m in compare_stacks(anchor, image) if m.must_match]


# --- the image plan --------------------------------------------------------------------------------------------

# Files the build context needs (image/Dockerfile COPYs them); sent as a tar on stdin so the classic builder sends
# nothing else either.
BUILD_CONTEXT = ("pyproject.toml", "README.md", "nanogpt_tui", "image/Dockerfile", "image/submit",
                 "image/nanogpt-tui.toml", "image/fetch_fineweb.py", "image/check_stack.py",
                 "human_baselines/records.tsv")
# CUDA base images by CUDA major.minor (the devel images, Ubuntu 24.04, whose Python 3.12 runs nanogpt-tui).
CUDA_IMAGES = {
    "12.6": "nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04",
    "12.8": "nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04",
    "12.9": "nvidia/cuda:12.9.1-cudnn-devel-ubuntu24.04",
    "13.0": "nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04",
}
IMAGE_PYTHON = "3.12"  # Ubuntu 24.04's


@dataclass(frozen=True)
class ImagePlan:
    """How to build an image for an anchor's stack: the stack it will have, the build arguments, and what differs
    from the anchor's log (with whether that is allowed)."""

    anchor: str
    anchor_stack: Stack
    image_stack: Stack
    build_args: dict[str, str]
    tag: str
    notes: tuple[str, ...]

    @property
    def mismatches(self) -> list[Mismatch]:
        return compare_stacks(self.anchor_stack, self.image_stack)

    def command(self) -> str:
        files = " ".join(BUILD_CONTEXT)
        args = " ".join(f"--build-arg {shlex.quote(f'{k}={v}')}" for k, v in self.build_args.items())
        return f"tar -c --exclude=__pycache__ {files} | docker build -f image/Dockerfile -t {shlex.quote(self.tag)} {args} -"

    def to_dict(self) -> dict[str, object]:
        return {"anchor": self.anchor, "anchor_stack": self.anchor_stack.to_dict(),
                "image_stack": self.image_stack.to_dict(), "build_args": self.build_args, "tag": self.tag,
                "command": self.command(), "notes": list(self.notes),
                "differences": [{"field": m.field, "anchor": m.anchor, "image": m.image, "must_match": m.must_match,
                                 "why": m.why} for m in self.mismatches]}


def image_tag(anchor: str) -> str:
    return f"nanogpt-bench:{re.sub(r'[^A-Za-z0-9_.-]', '-', anchor)[:120]}"


def plan_image(anchor: str, stack: Stack, *, exact: bool = False) -> ImagePlan:
    """The closest obtainable image for a record's stack. A record that ran a PyTorch nightly
    (`2.9.0.dev20250718+cu126`) gets the release of the same major.minor (`2.9.0+cu126`), because PyTorch's nightly
    index drops old nightlies; `exact` pins the nightly itself instead. Triton is pinned to the record's version
    even where that release asks for another."""
    if not stack.stated:
        raise ValueError(f"the log of {anchor} states no PyTorch version")
    notes: list[str] = []
    torch_version, _, local = stack.torch.partition("+")
    cuda_mm = _major_minor(stack.cuda)
    cuda_tag = local if local.startswith("cu") else "cu" + cuda_mm.replace(".", "")
    nightly = ".dev" in torch_version
    if nightly and not exact:
        release = torch_version.split(".dev")[0]
        notes.append(f"The record ran the nightly {stack.torch}, which PyTorch's nightly index may no longer serve; "
                     f"this plan uses the {release} release for {cuda_tag}, the closest obtainable stack (same "
                     "major.minor). `image plan --exact` pins the nightly itself.")
        torch_version, nightly = release, False
    cuda_image = CUDA_IMAGES.get(cuda_mm)
    if cuda_image is None:
        cuda_image = f"nvidia/cuda:{cuda_mm}.0-cudnn-devel-ubuntu24.04"
        notes.append(f"No CUDA {cuda_mm} base image is known to nanogpt-tui; {cuda_image} is a guess: check that it "
                     "exists.")
    if stack.attention == ATTENTION_FA3_BUILD:
        notes.append("FlashAttention-3 is built from source (flash_attn_interface), as the record's README does: "
                     "the longest step of the build.")
    build_args = {
        "CUDA_IMAGE": cuda_image,
        "TORCH_VERSION": f"{torch_version}+{cuda_tag}",
        "TORCH_INDEX_URL": f"https://download.pytorch.org/whl/{'nightly/' if nightly else ''}{cuda_tag}",
        "CUDA_VERSION": cuda_mm,
        "TRITON_VERSION": stack.triton,
        "ATTENTION": stack.attention,
        "HF_KERNELS": stack.kernel_repo,
        "HF_KERNEL_VERSION": stack.kernel_version,
        "TIKTOKEN_ENCODINGS": stack.tiktoken or "gpt2",
        "STACK_RECORD": anchor,
    }
    image = Stack(python=IMAGE_PYTHON, torch=f"{torch_version}+{cuda_tag}", cuda=cuda_mm, triton=stack.triton,
                  attention=stack.attention, kernel_repo=stack.kernel_repo, kernel_version=stack.kernel_version,
                  tiktoken=stack.tiktoken or "gpt2")
    return ImagePlan(anchor=anchor, anchor_stack=stack, image_stack=image, build_args=build_args,
                     tag=image_tag(anchor) + ("-exact" if exact and ".dev" in stack.torch else ""),
                     notes=tuple(notes))


# --- the check before a session starts -------------------------------------------------------------------------

ENV_MATCH = "match"                  # the image shares every must-match field with the anchor
ENV_MISMATCH = "mismatch"            # it does not (refused unless allowed)
ENV_UNSTATED = "image-unstated"      # the image states no stack (refused unless allowed)
ENV_OUTSIDE = "outside"              # not checked: the CPU test image, or an anchor with no stated stack


@dataclass(frozen=True)
class EnvCheck:
    """The outcome of comparing a session's image with its anchor's stack; kept in the session and its reports."""

    status: str
    reason: str
    anchor_stack: dict[str, str] | None = None
    image_stack: dict[str, str] | None = None
    differences: tuple[dict[str, object], ...] = ()
    allowed: bool = False  # started anyway with --allow-env-mismatch

    @property
    def refused(self) -> bool:
        return self.status in (ENV_MISMATCH, ENV_UNSTATED) and not self.allowed

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "reason": self.reason, "anchor_stack": self.anchor_stack,
                "image_stack": self.image_stack, "differences": list(self.differences), "allowed": self.allowed}


def check_image_stack(anchor: str, anchor_stack: Stack | None, image: str, labels: Mapping[str, str],
                      *, allow_mismatch: bool = False) -> EnvCheck:
    """Whether a session on `image` (its labels) may run anchor `anchor`: every must-match field must agree."""
    if labels.get(LABEL_OUTSIDE_CHECK):
        return EnvCheck(ENV_OUTSIDE, f"{image} is the CPU test image, outside the stack check")
    if anchor_stack is None or not anchor_stack.stated:
        return EnvCheck(ENV_OUTSIDE, f"the anchor {anchor} has no stack in the manifest (not a timeline record "
                                     "with a log), so there is nothing to check the image against")
    fix = (f"build the anchor's image (`nanogpt-tui image plan --anchor {anchor}` prints the command) and pass "
           "--image, or start with --allow-env-mismatch")
    image_stack = Stack.from_labels(labels)
    if image_stack is None:
        return EnvCheck(ENV_UNSTATED, f"The image {image} states no stack (no {LABEL_PREFIX}* labels), so it cannot "
                                      f"be checked against {anchor}'s; {fix}.",
                        anchor_stack=anchor_stack.to_dict(), allowed=allow_mismatch)
    differences = compare_stacks(anchor_stack, image_stack)
    rows = tuple({"field": m.field, "anchor": m.anchor, "image": m.image, "must_match": m.must_match}
                 for m in differences)
    breaking = [m for m in differences if m.must_match]
    if not breaking:
        return EnvCheck(ENV_MATCH, f"{image} matches {anchor}'s stack in every must-match field",
                        anchor_stack.to_dict(), image_stack.to_dict(), rows)
    return EnvCheck(ENV_MISMATCH, f"The image {image} differs from {anchor}'s stack in "
                                  + "; ".join(m.sentence() for m in breaking) + f"; {fix}.",
                    anchor_stack.to_dict(), image_stack.to_dict(), rows, allowed=allow_mismatch)
