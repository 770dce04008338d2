"""Parsing the speedrun's log lines, including logs that begin with the code."""

from __future__ import annotations

import pytest

from nanogpt_tui.errors import UserError
from nanogpt_tui.validator.runlog import final_line, read_final_lines

CODE = ('print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{t:.0f}ms")\n'
        "# step:9/9 val_loss:1.0000 train_time:1ms step_avg:1ms  (a comment in the code)\n")
OUTPUT = ("step:0/1600 val_loss:10.8258 train_time:0ms step_avg:0.02ms\n"
          "step:1/1600 train_time:68ms step_avg:68.40ms\n"
          "step:1600/1600 val_loss:3.2770 train_time:98031ms step_avg:61.27ms\n"
          "peak memory allocated: 31000 MiB\n")


def test_final_line_skips_the_code_section():
    line = final_line(CODE + "=" * 100 + "\n" + OUTPUT)
    assert (line.step, line.total_steps, line.val_loss, line.train_time_ms) == (1600, 1600, 3.277, 98031.0)


def test_a_run_cut_short_has_no_final_line():
    assert final_line("step:800/1600 val_loss:3.5000 train_time:50000ms step_avg:62.5ms\n") is None
    assert final_line("Traceback (most recent call last):\n") is None


def test_read_final_lines_names_the_bad_file(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(OUTPUT)
    bad = tmp_path / "bad.txt"
    bad.write_text("step:800/1600 val_loss:3.5000 train_time:50000ms step_avg:62.5ms\n")
    assert read_final_lines([good])[0].val_loss == 3.277
    with pytest.raises(UserError, match=r"bad.txt did not finish: its last validation line is at step 800 of 1600"):
        read_final_lines([good, bad])
    with pytest.raises(UserError, match="Cannot read the log"):
        read_final_lines([tmp_path / "missing.txt"])
