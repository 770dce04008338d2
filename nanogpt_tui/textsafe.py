"""Untrusted text made safe to show: invisible and direction-changing characters (U+202E and its kin) shown as
visible `<U+XXXX>` marks, so text never reads differently on screen or in a report than it is."""

from __future__ import annotations

import re

# Bidi embeddings, overrides and isolates; zero-width and joiner characters; line/paragraph separators; the BOM;
# the Arabic letter mark and the Mongolian vowel separator. Each can hide or reorder text without being seen.
INVISIBLE = re.compile("[\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")


def neutralize(text: str) -> str:
    """`text` with every invisible or direction-changing character replaced by a visible `<U+XXXX>` mark."""
    return INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
