"""Entry points: classify two record folders or two sets of files."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from nanogpt_tui.classify.algorithmic import discount_library_reimplemented, discount_reimplemented, \
    library_replacements
from nanogpt_tui.classify.decision import _combine
from nanogpt_tui.classify.diff import _diff_python, _diff_text, _parse
from nanogpt_tui.classify.knobs import attribute_new_knobs
from nanogpt_tui.classify.neutral import discount_moved, statements_of
from nanogpt_tui.classify.model import ALGORITHMIC, Classification, Evidence, SYSTEMS
from nanogpt_tui.classify.systems import systems_names


CODE_SUFFIXES = (".py", ".sh")


def code_files(folder: Path) -> dict[str, str]:
    """A record or candidate folder's code: its top-level `.py` and `.sh` files, as text."""
    folder = Path(folder)
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix in CODE_SUFFIXES:
            files[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return files


def classify_dirs(parent: Path, child: Path) -> Classification:
    """Classify the change from the code in folder `parent` to the code in folder `child`."""
    return classify_sources(code_files(parent), code_files(child))


def classify_sources(parent: Mapping[str, str], child: Mapping[str, str]) -> Classification:
    """Classify the change between two sets of files ({file name: source})."""
    evidence: list[Evidence] = []
    trees: dict[tuple[str, str], ast.Module | None] = {}
    unparsable: dict[str, str] = {}
    for side, files in (("old", parent), ("new", child)):
        for name, text in files.items():
            if name.endswith(".py"):
                try:
                    trees[(side, name)] = _parse(name, text)
                except (SyntaxError, ValueError) as err:
                    unparsable[name] = f"{name} does not parse (line {getattr(err, 'lineno', '?')})"
    kernel_names = systems_names((name, tree) for (_, name), tree in trees.items() if tree is not None)
    for name in sorted(set(parent) | set(child)):
        old, new = parent.get(name), child.get(name)
        if old == new:
            continue
        if name.endswith(".py") and name not in unparsable:
            old_tree, new_tree = trees.get(("old", name)), trees.get(("new", name))
            if old_tree is not None and new_tree is not None and ast.dump(old_tree) == ast.dump(new_tree):
                continue
            evidence.extend(_diff_python(name, old_tree, new_tree, kernel_names))
        elif name.endswith(".py"):
            # Python that does not parse is compared as text: numbers only is tuning, anything else a change.
            for e in _diff_text(name, old, new):
                if e.kind == SYSTEMS:
                    e.kind, e.why = ALGORITHMIC, f"{unparsable[name]}, compared as text"
                evidence.append(e)
        else:
            evidence.extend(_diff_text(name, old, new))
    new_statements: Counter[str] = Counter()
    for (side, _), tree in trees.items():
        if side == "new" and tree is not None:
            new_statements.update(statements_of(tree.body))
    discount_moved(evidence, new_statements)
    discount_reimplemented(evidence)
    discount_library_reimplemented(evidence, library_replacements(
        [t for (side, _), t in trees.items() if side == "old" and t is not None],
        [t for (side, _), t in trees.items() if side == "new" and t is not None]))
    attribute_new_knobs(evidence)
    return _combine(evidence)
