"""Untrusted text in reports and on screen: one escaping helper per report format, keys masked by any long piece
of their value, invisible and direction-changing characters shown as marks."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from nanogpt_tui.agents.render import mask_secrets, sanitize, sanitize_lines
from nanogpt_tui.reports.render import Block, html_text, md_text, to_html, to_markdown

HOSTILE = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "[click](javascript:alert(1))",
           "![x](http://127.0.0.1/t.png)", "`code` ``` fence", "a | b", "# not a heading", "&lt;script&gt;",
           "safe\u202etxt.exe", "zero\u200bwidth", "<https://example.invalid>", "_emph_ *emph*"]
KEY = "sk-ant-api03-" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm"


def blocks(text: str) -> list[Block]:
    return [Block("h2", text), Block("p", f"reason: {text}"), Block("list", items=[text]),
            Block("table", headers=["file", "reason"], rows=[[text, text]]), Block("code", text, lang="diff"),
            Block("details", summary=text, text=text)]


def test_hostile_text_is_literal_in_markdown_and_html():
    for text in HOSTILE:
        md = to_markdown(blocks(text))
        outside_code = re.sub(r"(?ms)^(`{3,})[^\n]*\n.*?^\1$", "", md)  # a fence's text is literal in Markdown
        outside_code = re.sub(r"<summary>.*</summary>", "", outside_code)  # raw HTML (escaped): no Markdown there
        assert not re.search(r"(?<!\\)<(?!/?details>|/?summary>)", outside_code), (text, md)
        assert "](javascript" not in outside_code.replace("\\](javascript", "")
        page = to_html(blocks(text), text, None)
        assert "<script>" not in page and "<img" not in page and "\u202e" not in page and "\u200b" not in page
    assert "<U+202E>" in to_markdown(blocks("safe\u202etxt.exe"))


def test_code_fences_cannot_be_closed_by_the_text():
    md = to_markdown([Block("code", "x\n````\n# out of the fence?", lang="")])
    assert md.startswith("`````\n") and md.rstrip().endswith("`````")


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=80))
def test_any_text_escapes_without_raw_markup(text):
    md, page = md_text(text), html_text(text)
    assert not re.search(r"(?<!\\)[<`\[]", md.replace("\\\\", ""))
    assert "<" not in page and ">" not in page and "\u202e" not in md + page


def test_any_long_piece_of_a_key_is_masked():
    body = KEY[len("sk-ant-api03-"):]
    for text in (f"key={KEY}", f"no prefix: {body}", f"split: {KEY[:25]}\n{KEY[25:]}", f"middle {body[5:20]} end"):
        masked = mask_secrets(text, [KEY])
        assert not any(KEY[i:i + 12] in masked for i in range(len(KEY) - 11)), masked
    assert mask_secrets("tokens 123 and words", [KEY]) == "tokens 123 and words"


def test_bidi_and_invisible_characters_are_marks_on_screen():
    assert sanitize("invoice\u202egpj.exe") == "invoice<U+202E>gpj.exe"
    assert sanitize("a\u2066b\u2069c\ufeffd") == "a<U+2066>b<U+2069>c<U+FEFF>d"


def test_text_read_line_by_line_keeps_its_lines_and_indentation_and_loses_its_escapes():
    text = "run 1/4: ok\r\n    step:10\x1b[31m/10\x1b]0;title\x07\n\tx = 1\n\ninvoice\u202egpj\n"
    assert sanitize_lines(text) == ["run 1/4: ok", "    step:10/10", "    x = 1", "", "invoice<U+202E>gpj", ""]
    assert sanitize(text).count("↵") == 5  # one line, as a list row shows it


def test_every_key_shape_is_masked_whatever_its_case():
    """The one-scan look for key-like words before the key patterns run misses none of their shapes."""
    secret = "Zq8" + "xW2vT9kLm4"
    for text in (f"sk-ant-{secret}", f"sk-{secret}", f"Bearer {secret}", f"BEARER {secret}",
                 f"authorization: bearer {secret}", f"OPENAI_API_KEY={secret}", f"openai_api_key: {secret}",
                 f"HF_TOKEN='{secret}'", f"my_secret = {secret}", f"x-api-key: {secret}", f"Api-Key={secret}"):
        masked = mask_secrets(f"before {text} after")
        assert secret not in masked and "***" in masked, text
    assert mask_secrets("step:1200/1600 val_loss:3.30") == "step:1200/1600 val_loss:3.30"
