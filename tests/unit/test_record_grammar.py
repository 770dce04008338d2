"""Record code written for Python 3.12 (PEP 701 f-strings) read on the Python 3.11 we support."""

from __future__ import annotations

import ast

import pytest

from nanogpt_tui.classify import classify_sources
from nanogpt_tui.record_grammar import bridge_line, parse_newer
from nanogpt_tui.validator.rules.program import _parse as program_parse

NEWER = 'print0(f"inductor_output_code: {metadata_fn().get("filename", "Unknown")}")'
OLDER = "print0(f\"inductor_output_code: {metadata_fn().get('filename', 'Unknown')}\")"

RECORD = '''import torch

class Hyperparameters:
    num_iterations = 5960
    cooldown_frac = 0.7

def log_compile(metadata_fn):
    print0(f"inductor_output_code: {metadata_fn().get("filename", "Unknown")}")

def get_lr(step):
    return 1.0 - step / Hyperparameters.num_iterations
'''


def test_an_inner_string_in_the_fstrings_own_quote_is_rewritten_to_the_other_quote():
    assert bridge_line(NEWER) == OLDER
    assert len(bridge_line(NEWER)) == len(NEWER)  # one quote for another: every column stays where it was
    assert bridge_line(OLDER) is None  # nothing to do
    assert bridge_line('x = f"{a["k"]} and {{literal}} {b!r:>10}" + f\'{c}\'') == \
        "x = f\"{a['k']} and {{literal}} {b!r:>10}\" + f'{c}'"


def test_the_bridged_tree_is_the_tree_python_3_12_gives():
    tree = parse_newer(RECORD, "train_gpt.py")
    assert ast.dump(tree) == ast.dump(ast.parse(RECORD.replace(NEWER, OLDER)))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print0")
    assert (call.lineno, call.col_offset, call.end_col_offset) == (8, 4, 4 + len(NEWER))


@pytest.mark.parametrize("text", [
    'x = f"{d.get("it\'s")}" + (\n',    # the inner string holds the other quote too (and a real error)
    'x = f"""{d.get("k")}"""\ny = (\n',  # triple quotes, then a real error
    "def f(:\n    pass\n",                  # not newer grammar, just wrong
])
def test_what_cannot_be_bridged_keeps_its_syntax_error(text):
    with pytest.raises(SyntaxError) as expected:
        ast.parse(text)
    with pytest.raises(SyntaxError) as raised:
        parse_newer(text, "x.py")
    assert raised.value.lineno == expected.value.lineno


def test_a_record_in_newer_grammar_is_classified_by_its_syntax_not_as_text():
    new = RECORD.replace("num_iterations = 5960", "num_iterations = 5900")
    c = classify_sources({"train_gpt.py": RECORD}, {"train_gpt.py": new})
    assert c.label == "hyperparameter"
    assert not any("does not parse" in e.why for e in c.evidence)


def test_the_validator_reads_a_record_in_newer_grammar():
    source = program_parse("train_gpt.py", RECORD)
    assert source.error is None and source.tree is not None
