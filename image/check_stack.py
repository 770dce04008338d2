#!/usr/bin/env python3
"""Build-time check of the benchmark image: the stack its build arguments state is what got installed.

Fails the build (exit 1, one line per difference) when torch, its CUDA, Triton, the FlashAttention path or the
prefetched kernel-hub build and tiktoken encodings differ from what was asked; writes the installed stack as JSON.
Runs with the network off for the offline parts (HF_HUB_OFFLINE=1), as sessions will.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("python", "torch", "cuda", "triton", "attention", "kernel-repo", "kernel-version", "tiktoken"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch
    import triton

    installed = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda or "",
                 "triton": triton.__version__, "attention": args.attention, "kernel_repo": args.kernel_repo,
                 "kernel_version": args.kernel_version, "tiktoken": args.tiktoken}
    problems = []
    if args.python and not (installed["python"] + ".").startswith(args.python + "."):
        problems.append(f"python is {installed['python']}, not {args.python}")
    if installed["torch"] != args.torch:
        problems.append(f"torch is {installed['torch']}, not {args.torch}")
    if installed["cuda"] != args.cuda:
        problems.append(f"torch was built for CUDA {installed['cuda']}, not {args.cuda}")
    if args.triton and installed["triton"] != args.triton:
        problems.append(f"triton is {installed['triton']}, not {args.triton}")
    if args.attention == "flash_attn_interface" and importlib.util.find_spec("flash_attn_interface") is None:
        problems.append("flash_attn_interface (FlashAttention-3) is not importable")
    for repo in args.kernel_repo.split():
        from kernels import install_kernel

        revision = f"v{args.kernel_version}" if args.kernel_version else "main"
        try:
            install_kernel(repo, revision=revision, local_files_only=True)
        except Exception as err:  # noqa: BLE001 - any failure means the session could not load it offline
            problems.append(f"the kernel-hub build {repo}@{revision} does not resolve offline ({err})")
    for encoding in args.tiktoken.split():
        import tiktoken

        try:
            tiktoken.get_encoding(encoding)
        except Exception as err:  # noqa: BLE001
            problems.append(f"tiktoken's {encoding} encoding does not load offline ({err}); TIKTOKEN_CACHE_DIR is "
                            f"{os.environ.get('TIKTOKEN_CACHE_DIR', 'unset')}")
    for problem in problems:
        print(f"image stack: {problem}", file=sys.stderr)
    if problems:
        return 1
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(installed, handle, indent=2)
    print("image stack:", json.dumps(installed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
