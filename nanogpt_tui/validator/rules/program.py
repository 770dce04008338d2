"""Loading a record folder: train_gpt.py, the Python scripts run.sh starts, and the local modules they import."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nanogpt_tui.errors import UserError
from nanogpt_tui.validator.rules.names import ENTRY_SCRIPT, RUN_SCRIPT, SKIP_DIRS
from nanogpt_tui.validator.rules.pyast import Aliases, assignments_by_name
from nanogpt_tui.validator.rules.shell import ShellCommand, parse_shell, torchrun_launch
from nanogpt_tui.record_grammar import parse_newer


@dataclass
class SourceFile:
    """One Python file of a folder: its text and tree (None when it does not parse)."""

    rel: str
    text: str
    tree: ast.Module | None
    error: SyntaxError | None = None
    _aliases: Aliases | None = None
    _assigns: dict[str, list[ast.expr]] | None = None
    _owners: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] | None = None

    @property
    def aliases(self) -> Aliases:
        if self._aliases is None:
            assert self.tree is not None
            self._aliases = Aliases.of(self.tree)
        return self._aliases

    def globals_of(self, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        """Functions that declare `global name`."""
        assert self.tree is not None
        out = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Global) and name in node.names:
                fn = self.owner(node)
                if fn is not None and fn not in out:
                    out.append(fn)
        return out

    def owner(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The innermost function whose body holds `node` (None at module level)."""
        if self._owners is None:
            assert self.tree is not None
            owners: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}

            def visit(n: ast.AST, fn: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
                for child in ast.iter_child_nodes(n):
                    if fn is not None:
                        owners[id(child)] = fn
                    visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn)

            visit(self.tree, None)
            self._owners = owners
        return self._owners.get(id(node))

    @property
    def assigns(self) -> dict[str, list[ast.expr]]:
        """Every value assigned to each plain name anywhere in the file (scopes merged: good enough for resolving)."""
        if self._assigns is None:
            assert self.tree is not None
            self._assigns = assignments_by_name(self.tree)
        return self._assigns


@dataclass
class Program:
    """The code of one record folder that actually runs."""

    root: Path
    files: list[SourceFile]
    run_sh: list[ShellCommand] | None
    run_sh_exports: list[tuple[int, str, str]] = field(default_factory=list)
    entry_rel: str = ENTRY_SCRIPT
    functions: dict[str, list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, SourceFile]]] = field(default_factory=dict)
    classes: dict[str, list[tuple[ast.ClassDef, SourceFile]]] = field(default_factory=dict)

    @property
    def parsed(self) -> list[SourceFile]:
        return [f for f in self.files if f.tree is not None]

    @property
    def entry(self) -> SourceFile | None:
        """The script the launch runs (train_gpt.py unless run.sh launches another local script)."""
        for f in self.files:
            if f.rel == self.entry_rel:
                return f
        return None


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _parse(rel: str, text: str) -> SourceFile:
    try:
        tree = parse_newer(text, rel)
    except SyntaxError as err:
        return SourceFile(rel=rel, text=text, tree=None, error=err)
    except ValueError as err:  # e.g. null bytes in the source
        return SourceFile(rel=rel, text=text, tree=None, error=SyntaxError(str(err)))
    except (RecursionError, MemoryError):
        return SourceFile(rel=rel, text=text, tree=None, error=SyntaxError("nested too deeply to parse"))
    return SourceFile(rel=rel, text=text, tree=tree)


def _local_module(root: Path, base: Path, module: str) -> Path | None:
    """The file a local import refers to, searched relative to the importing file and to the folder root."""
    parts = module.split(".")
    for start in (base, root):
        for candidate in (start.joinpath(*parts).with_suffix(".py"), start.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                try:
                    candidate.resolve().relative_to(root.resolve())
                except ValueError:
                    continue
                return candidate
    return None


def _imported_files(root: Path, path: Path, tree: ast.Module) -> list[Path]:
    """Local files imported by a module: `import kernels`, `from triton_kernels import XXT`, `from . import util`."""
    found: list[Path] = []
    base = path.parent
    for node in ast.walk(tree):
        modules: list[tuple[Path, str]] = []
        if isinstance(node, ast.Import):
            modules = [(base, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = base
            for _ in range(max(node.level - 1, 0)):
                start = start.parent
            prefix = f"{node.module}." if node.module else ""
            if node.module:
                modules.append((start, node.module))
            modules += [(start, prefix + alias.name) for alias in node.names if alias.name != "*"]
        for start, name in modules:
            target = _local_module(root, start, name)
            if target:
                found.append(target)
    return found


def load_program(root: Path, *, role: str) -> Program:
    """Read a record folder: train_gpt.py, the Python scripts run.sh starts, and the local modules they import.

    Raises UserError when the folder or its train_gpt.py is missing; syntax errors are kept
    on the files (the caller decides whether that is bad input or a violation).
    """
    if not root.exists():
        raise UserError(f"The {role} folder {root} does not exist; pass the folder that holds its train_gpt.py.")
    if not root.is_dir():
        raise UserError(f"The {role} path {root} is not a folder; pass the folder that holds its train_gpt.py.")
    if not (root / ENTRY_SCRIPT).is_file():
        raise UserError(f"The {role} folder {root} has no {ENTRY_SCRIPT}; pass a record folder with its training script.")

    run_sh: list[ShellCommand] | None = None
    exports: list[tuple[int, str, str]] = []
    if (root / RUN_SCRIPT).is_file():
        run_sh, exports = parse_shell(_read_text(root / RUN_SCRIPT))

    entries = [root / ENTRY_SCRIPT]
    launched: Path | None = None
    for cmd in run_sh or []:
        for word in cmd.argv:
            if word.endswith(".py"):
                script = (root / word).resolve() if not word.startswith("/") else None
                if script and script.is_file() and _inside(root, script):
                    entries.append(script)
                    if launched is None and torchrun_launch(cmd, {}) is not None:
                        launched = script

    files: list[SourceFile] = []
    seen: set[Path] = set()
    queue = list(entries)
    while queue:
        path = queue.pop(0)
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            rel = PurePosixPath(key.relative_to(root.resolve())).as_posix()
        except ValueError:  # a link that leaves the folder: name it as the folder does
            rel = PurePosixPath(path.relative_to(root)).as_posix()
        if any(part in SKIP_DIRS for part in PurePosixPath(rel).parts):
            continue
        sf = _parse(rel, _read_text(path))
        files.append(sf)
        if sf.tree is not None:
            queue.extend(_imported_files(root, path, sf.tree))

    program = Program(root=root, files=files, run_sh=run_sh, run_sh_exports=exports)
    if launched is not None:
        program.entry_rel = PurePosixPath(launched.relative_to(root.resolve())).as_posix()
    for sf in program.parsed:
        assert sf.tree is not None
        for node in ast.walk(sf.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                program.functions.setdefault(node.name, []).append((node, sf))
            elif isinstance(node, ast.ClassDef):
                program.classes.setdefault(node.name, []).append((node, sf))
    return program


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
