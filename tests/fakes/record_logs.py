"""Speedrun-style training logs for self-written records, built the way the records' scripts print them."""

from __future__ import annotations

FA3_STYLE_ENV = ("Running Python 3.10.12 (main, May 27 2025, 17:12:29) [GCC 11.4.0]\n"
                 "Running PyTorch 2.9.0.dev20250718+cu126 compiled for CUDA 12.6\n"
                 "Running Triton version 3.4.0\n")
NVIDIA_SMI_H100 = (
    "Thu Jan  1 00:00:00 2099\n"
    "+-----------------------------------------------------------------------------------------+\n"
    "| NVIDIA-SMI 580.00.00              Driver Version: 580.00.00      CUDA Version: 13.0     |\n"
    "|=========================================+========================+======================|\n"
    "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:8D:00.0 Off |                    0 |\n"
    "|   1  NVIDIA H100 80GB HBM3          On  |   00000000:91:00.0 Off |                    0 |\n"
    "+-----------------------------------------+------------------------+----------------------+\n"
)


def section_of(files: dict[str, str]) -> str:
    """What a record's script prints first: its own text, then each companion after a file header (as the 2026
    records do: `code += f"\\n\\n{'-'*40}\\n# NAME\\n{'-'*40}\\n\\n" + text`), then print()'s newline."""
    items = iter(files.items())
    _, code = next(items)
    for name, text in items:
        code += f"\n\n{'-' * 40}\n# {name}\n{'-' * 40}\n\n" + text
    return code + "\n"


def log_of(files: dict[str, str], env: str = FA3_STYLE_ENV, smi: str = NVIDIA_SMI_H100,
           steps: int = 10, val_loss: float = 3.27) -> str:
    """A whole training log: code, the `=` line, the environment lines and nvidia-smi, the `=` line, the run."""
    rule = "=" * 100 + "\n"
    run = f"step:{steps}/{steps} val_loss:{val_loss:.4f} train_time:1000ms step_avg:100.00ms\n"
    return section_of(files) + rule + env + smi + "\n" + rule + run
