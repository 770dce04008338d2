"""Static rule checks: compare a candidate record folder with its anchor through the AST, offline and deterministic.

Each check extracts *facts* from both folders (the flags passed to `torch.compile`, the
compiler settings, the validation constants, where the clock stops and starts, how the
warm-up ends, what `run.sh` installs and launches) and compares the candidate's facts
with the anchor's, instead of diffing code. Whatever the anchor does is allowed; a fact
the anchor lacks is never demanded of the candidate. Only the code that runs is read:
`train_gpt.py`, the Python scripts `run.sh` starts, and the local modules they import.

Timing and validation facts come from a *trace*: the entry script's statements in
order, with calls to functions defined in the analysed files inlined (depth-limited), so
renamed helpers, classes that wrap the optimizer, and code moved between files are
seen the same way as the anchor's inline code.

This module imports only the standard library (no torch, Textual or docker).
"""

from __future__ import annotations

import ast
import json
import operator
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nanogpt_tui.errors import UserError

# -----------------------------------------------------------------------------
# The rules, the violations, the report


@dataclass(frozen=True)
class Rule:
    """One static rule: its stable id and a one-line description (docs and the judge prompt use both)."""

    id: str
    description: str


RULES: tuple[Rule, ...] = (
    Rule("syntax", "Every Python file that runs (train_gpt.py, scripts run.sh starts, local modules they import) parses."),
    Rule("compile-flags", "torch.compile is called only with keyword flags (and option values) the anchor already uses; "
                          "call sites may be added, moved or removed."),
    Rule("compiler-config", "No torch._inductor.config / torch._dynamo.config / torch._functorch.config setting, "
                            "config.patch, or TORCHINDUCTOR_/TORCHDYNAMO_ environment variable the anchor does not set."),
    Rule("recompile-limit", "torch._dynamo.config.recompile_limit (alias cache_size_limit) keeps the anchor's value."),
    Rule("coordinate-descent", "Inductor's coordinate_descent_tuning is never enabled (config, compile options, "
                               "environment or run.sh)."),
    Rule("val-constants", "val_tokens, val_batch_size and val_files keep the anchor's values wherever they are defined."),
    Rule("train-files", "train_files keeps the anchor's value: the training data stream is unchanged."),
    Rule("val-loader", "Each validation builds a fresh loader from val_files inside the training loop, "
                       "while the clock is stopped."),
    Rule("val-reduce", "Each validation averages its loss over the validation steps and over ranks "
                       "(dist.all_reduce or dist.reduce) inside the training loop."),
    Rule("warmup", "Warm-up runs before the timed loop with the anchor's step count (when a literal), the initial state "
                   "is saved before it and restored (load_state_dict) after it."),
    Rule("timing-clock", "The timed loop accumulates real elapsed wall-clock time, stopping (after a CUDA synchronize) "
                         "before validation and restarting after it; the accumulator and start time are not otherwise "
                         "altered."),
    Rule("fixed-steps", "The training loop runs a fixed number of steps: its bound is not reassigned in the loop and "
                        "no break/continue/return/exit depends on time or loss."),
    Rule("run-deps", "run.sh (and any subprocess the code starts) installs, removes or upgrades no packages."),
    Rule("launch-shape", "run.sh launches torchrun with the anchor's --nproc_per_node, --nnodes, --standalone and "
                         "CUDA_VISIBLE_DEVICES."),
)

RULE_IDS: frozenset[str] = frozenset(rule.id for rule in RULES)

# Violations about something missing from a file as a whole carry this line number.
WHOLE_FILE = 0


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (file relative to the candidate folder, 1-based line or 0) and a one-sentence message."""

    rule: str
    file: str
    line: int
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "file": self.file, "line": self.line, "message": self.message}

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, self.line, self.rule, self.message)


@dataclass
class RuleReport:
    """The outcome of `check_rules`: no violations means ok."""

    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "violations": [v.to_dict() for v in self.violations]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# -----------------------------------------------------------------------------
# Names the checks look for

ENTRY_SCRIPT = "train_gpt.py"
RUN_SCRIPT = "run.sh"

WALL_CLOCKS = frozenset({
    "time.perf_counter", "time.time", "time.monotonic", "time.perf_counter_ns", "time.time_ns", "time.monotonic_ns",
})
CLOCKS = WALL_CLOCKS | {"time.process_time", "time.thread_time", "time.process_time_ns", "time.thread_time_ns"}

COMPILE_KWARGS = frozenset({"fullgraph", "dynamic", "backend", "mode", "options", "disable"})

CONFIG_MODULES = {
    "torch._inductor.config": "inductor",
    "torch._dynamo.config": "dynamo",
    "torch._functorch.config": "functorch",
}
COMPILER_ENV_PREFIXES = ("TORCHINDUCTOR_", "TORCHDYNAMO_", "TORCH_COMPILE_")
RECOMPILE_KEYS = {"dynamo.recompile_limit", "dynamo.cache_size_limit"}

VAL_NAMES = ("val_tokens", "val_batch_size", "val_files")
TRACKED_NAMES = frozenset(VAL_NAMES + ("train_files",))

# Unit conversions allowed as constant factors in the time accumulation (s -> ms, us, ns).
TIME_UNITS = frozenset({1, 1000, 1e3, 1e6, 1e9, 1_000_000, 1_000_000_000})

SUBPROCESS_CALLS = frozenset({
    "os.system", "os.popen", "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
    "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput",
})

# How deep the trace follows calls into locally defined functions, and how much it may record.
MAX_INLINE_DEPTH = 6
MAX_EVENTS = 400_000

SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", "node_modules"})


# -----------------------------------------------------------------------------
# Loading a folder


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
            self._assigns = _assignments_by_name(self.tree)
        return self._assigns


@dataclass
class ShellCommand:
    """One simple command of run.sh: its line, its words after assignments and wrappers, and its environment."""

    line: int
    argv: list[str]
    env: dict[str, str]


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
        tree = ast.parse(text, filename=rel)
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


# -----------------------------------------------------------------------------
# Name resolution: which library object an expression names


@dataclass
class Aliases:
    """Local names bound to modules or library objects (`import torch._dynamo as dynamo`, `cfg = torch._inductor.config`)."""

    names: dict[str, str]

    @classmethod
    def of(cls, tree: ast.Module) -> Aliases:
        names: dict[str, str] = {}
        assignments: list[ast.Assign] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    assignments.append(node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names.setdefault(alias.asname, alias.name)
                    else:
                        top = alias.name.split(".")[0]
                        names.setdefault(top, top)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        names.setdefault(alias.asname or alias.name, f"{node.module}.{alias.name}")
        aliases = cls(names)
        # Plain assignments of library objects (`compile_fn = torch.compile`), twice for chains.
        for _ in range(2):
            for node in assignments:
                if isinstance(node.targets[0], ast.Name):
                    target = node.targets[0].id
                    if target in aliases.names:
                        continue
                    qual = aliases.qualname(node.value)
                    if qual and qual.split(".")[0] in {"torch", "time", "functools", "os", "subprocess", "itertools"}:
                        aliases.names[target] = qual
        return aliases

    def qualname(self, node: ast.AST) -> str | None:
        """'torch._inductor.config.max_autotune' for `ic.max_autotune` after `import torch._inductor.config as ic`."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None


def _callee_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _text(node: ast.AST) -> str:
    return ast.unparse(node)


def _short(node: ast.AST, limit: int = 80) -> str:
    text = " ".join(_text(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -----------------------------------------------------------------------------
# Constant evaluation (literals and arithmetic on them, names resolved through a small environment)

_BINOPS: dict[type, Callable[[object, object], object]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}

_MISSING = object()


def const_eval(node: ast.AST, env: dict[str, object] | None = None) -> object:
    """The value of a constant expression, or _MISSING. Handles `4 * 64 * 1024 * 8`, strings, tuples, env names."""
    env = env or {}
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        val = const_eval(node.operand, env)
        if val is _MISSING:
            return _MISSING
        try:
            if isinstance(node.op, ast.Not):
                return not val
            return -val if isinstance(node.op, ast.USub) else +val  # type: ignore[operator]
        except TypeError:
            return _MISSING
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = const_eval(node.left, env), const_eval(node.right, env)
        if left is _MISSING or right is _MISSING:
            return _MISSING
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
            return _MISSING
        if isinstance(node.op, ast.Mult) and (isinstance(left, str) or isinstance(right, str)):
            if max(len(left) if isinstance(left, str) else 0, len(right) if isinstance(right, str) else 0) > 10_000:
                return _MISSING
        try:
            return _BINOPS[type(node.op)](left, right)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return _MISSING
    if isinstance(node, (ast.Tuple, ast.List)):
        vals = [const_eval(elt, env) for elt in node.elts]
        if any(v is _MISSING for v in vals):
            return _MISSING
        return tuple(vals) if isinstance(node, ast.Tuple) else list(vals)
    return _MISSING


def _value_repr(node: ast.AST) -> str:
    """A normal form for comparing values: the literal's repr when constant, else the expression's source."""
    val = const_eval(node)
    if val is not _MISSING:
        return repr(val)
    return _text(node)


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - comparing arbitrary literals; unequal when it cannot be decided
        return False


# -----------------------------------------------------------------------------
# run.sh: shell words, not Python


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "|&", ";;", "(", ")", "{", "}", "\n"})
_REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", "&>", "&>>", ">|", "<<", "<<<", "<>"})
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "for", "case", "esac"})
_WRAPPERS = frozenset({"sudo", "exec", "time", "nohup", "command", "nice", "env", "builtin", "stdbuf", "timeout",
                       "xargs", "srun", "ionice", "taskset", "numactl"})


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined (and open quotes carried over), with their first line number."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        buf = lines[i]
        while buf.endswith("\\") and i + 1 < len(lines):
            i += 1
            buf = buf[:-1] + " " + lines[i]
        # A quote left open runs on to later lines.
        j = i
        while j + 1 < len(lines) and not _balanced(buf):
            j += 1
            buf = buf + "\n" + lines[j]
        if _balanced(buf):
            i = j
        yield start, buf
        i += 1


def _balanced(line: str) -> bool:
    try:
        _shell_tokens(line)
    except ValueError:
        return False
    return True


def _shell_tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def parse_shell(text: str) -> tuple[list[ShellCommand], list[tuple[int, str, str]]]:
    """Split a shell script into simple commands; also return `export NAME=value` lines (line, name, value)."""
    commands: list[ShellCommand] = []
    exports: list[tuple[int, str, str]] = []
    for line_no, line in _logical_lines(text):
        try:
            tokens = _shell_tokens(line)
        except ValueError:
            tokens = line.split()
        current: list[str] = []
        groups: list[list[str]] = []
        for tok in tokens:
            if tok in _SEPARATORS:
                if current:
                    groups.append(current)
                current = []
            else:
                current.append(tok)
        if current:
            groups.append(current)
        for words in groups:
            words = _drop_redirects(words)
            while words and words[0] in _KEYWORDS:
                words = words[1:]
            env: dict[str, str] = {}
            while words and _ASSIGNMENT.match(words[0]):
                name, _, value = words[0].partition("=")
                env[name] = value
                words = words[1:]
            if words and words[0] in {"export", "declare", "typeset", "local", "readonly"}:
                for word in words[1:]:
                    if _ASSIGNMENT.match(word):
                        name, _, value = word.partition("=")
                        exports.append((line_no, name, value))
                continue
            if not words and env:
                # A bare `NAME=value` line sets a shell variable; exported or not, treat it as environment.
                exports.extend((line_no, k, v) for k, v in env.items())
                continue
            words, env = _strip_wrappers(words, env)
            if words:
                commands.append(ShellCommand(line=line_no, argv=words, env=env))
    return commands, exports


def _drop_redirects(words: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in _REDIRECTS:
            skip = True
            if out and out[-1].isdigit():
                out.pop()
            continue
        out.append(word)
    return out


def _strip_wrappers(words: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    env = dict(env)
    while words and PurePosixPath(words[0]).name in _WRAPPERS:
        wrapper = PurePosixPath(words[0]).name
        words = words[1:]
        while words and (words[0].startswith("-") or _ASSIGNMENT.match(words[0])
                         or (wrapper == "timeout" and re.match(r"^\d", words[0]))):
            if _ASSIGNMENT.match(words[0]):
                name, _, value = words[0].partition("=")
                env[name] = value
            words = words[1:]
    return words, env


_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_PIP = re.compile(r"^pip(\d+(\.\d+)?)?$")


def _first_word(args: list[str]) -> tuple[str | None, list[str]]:
    for i, word in enumerate(args):
        if not word.startswith("-"):
            return word, args[i + 1:]
    return None, []


def install_command(argv: list[str]) -> str | None:
    """What a command installs or removes, as a short phrase (`pip install`), or None when it changes no packages."""
    if not argv:
        return None
    name = PurePosixPath(argv[0]).name
    args = argv[1:]
    if _PYTHON.match(name):
        if "-m" in args:
            idx = args.index("-m")
            if idx + 1 < len(args):
                return install_command(args[idx + 1:])
        for i, word in enumerate(args):
            if word.endswith("setup.py") and i + 1 < len(args) and args[i + 1] in {"install", "develop"}:
                return f"setup.py {args[i + 1]}"
        return None
    sub, rest = _first_word(args)
    if _PIP.match(name) or name in {"pip-sync"}:
        if name == "pip-sync" or sub in {"install", "uninstall"}:
            return f"{name} {sub or ''}".strip()
        return None
    if name == "ensurepip":
        return "ensurepip"
    if name == "uv":
        if sub == "pip":
            inner, _ = _first_word(rest)
            return f"uv pip {inner}" if inner in {"install", "uninstall", "sync"} else None
        if sub in {"add", "remove", "sync"}:
            return f"uv {sub}"
        if sub == "tool":
            inner, _ = _first_word(rest)
            return "uv tool install" if inner == "install" else None
        if sub == "run" and any(w.startswith("--with") for w in rest):
            return "uv run --with"
        return None
    if name in {"conda", "mamba", "micromamba"}:
        if sub in {"install", "update", "upgrade", "remove", "uninstall", "create"}:
            return f"{name} {sub}"
        if sub == "env":
            inner, _ = _first_word(rest)
            return f"{name} env {inner}" if inner in {"create", "update"} else None
        return None
    if name in {"apt", "apt-get", "aptitude", "yum", "dnf", "zypper", "brew", "port"}:
        return f"{name} {sub}" if sub in {"install", "reinstall", "upgrade", "dist-upgrade", "remove", "purge"} else None
    if name == "apk":
        return f"apk {sub}" if sub in {"add", "del"} else None
    if name == "pacman":
        return "pacman -S" if any(w.startswith("-S") or w.startswith("-U") for w in args) else None
    if name in {"npm", "yarn", "pnpm", "bun"}:
        return f"{name} {sub}" if sub in {"install", "i", "add", "ci"} else None
    if name == "poetry":
        return f"poetry {sub}" if sub in {"add", "install", "update", "remove"} else None
    if name == "pipx":
        return f"pipx {sub}" if sub in {"install", "inject", "upgrade", "run"} else None
    if name in {"cargo", "gem"}:
        return f"{name} install" if sub == "install" else None
    if name == "go":
        return f"go {sub}" if sub in {"install", "get"} else None
    if name == "easy_install":
        return "easy_install"
    return None


@dataclass
class Launch:
    """The shape of one torchrun launch in run.sh."""

    line: int
    nproc: str | None
    nnodes: str | None
    standalone: bool
    visible_devices: str | None


def torchrun_launch(cmd: ShellCommand, exported: dict[str, str]) -> Launch | None:
    argv = cmd.argv
    name = PurePosixPath(argv[0]).name
    if name == "torchrun":
        args = argv[1:]
    elif _PYTHON.match(name) and "-m" in argv:
        idx = argv.index("-m")
        if idx + 1 < len(argv) and argv[idx + 1] in {"torch.distributed.run", "torch.distributed.launch"}:
            args = argv[idx + 2:]
        else:
            return None
    else:
        return None
    opts: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("--"):
            break  # the script and its arguments
        key, eq, value = word[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            opts[key] = value
        elif key in {"standalone", "no_python", "module", "run_path"}:
            opts[key] = None
        elif i + 1 < len(args):
            opts[key] = args[i + 1]
            i += 1
        i += 1
    env = dict(exported)
    env.update(cmd.env)
    return Launch(
        line=cmd.line,
        nproc=opts.get("nproc_per_node"),
        nnodes=opts.get("nnodes"),
        standalone="standalone" in opts,
        visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
    )


# -----------------------------------------------------------------------------
# Per-file facts: compile flags, compiler settings, tracked constants, installs


@dataclass(frozen=True)
class Site:
    """A fact found at one place: a key (a flag, a setting), a normalised value, its source text, and where."""

    key: str
    value: str
    text: str
    file: str
    line: int
    literal: object = _MISSING


@dataclass(frozen=True)
class Definition:
    """A definition of a tracked name (`val_tokens: int = 10485760`, `args.val_files = ...`)."""

    name: str
    literal: object  # the constant value, or _MISSING
    text: str
    file: str
    line: int
    # `os.path.join(data_path, args.val_files)`: the pattern with a folder put in front; the folder's variable names.
    prefix: frozenset[str] | None = None


@dataclass
class FileFacts:
    compile_flags: list[Site] = field(default_factory=list)
    settings: list[Site] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    installs: list[Site] = field(default_factory=list)


def _config_key(qual: str | None) -> str | None:
    if not qual:
        return None
    for module, short in CONFIG_MODULES.items():
        if qual.startswith(module + "."):
            return f"{short}.{qual[len(module) + 1:]}"
    return None


def _config_module(qual: str | None) -> str | None:
    if not qual:
        return None
    return CONFIG_MODULES.get(qual)


class _FactCollector(ast.NodeVisitor):
    """Walks one file and records the facts the comparison rules need."""

    def __init__(self, sf: SourceFile, local_classes: set[str]):
        self.sf = sf
        self.aliases = sf.aliases
        self.local_classes = local_classes
        self.facts = FileFacts()
        self.env_stack: list[dict[str, object]] = [{}]

    # -- helpers
    def _site(self, key: str, node: ast.AST, line: int, bucket: list[Site]) -> None:
        bucket.append(Site(key=key, value=_value_repr(node), text=_short(node), file=self.sf.rel, line=line,
                           literal=const_eval(node)))

    def _setting(self, key: str, value: ast.AST, line: int) -> None:
        self._site(key, value, line, self.facts.settings)

    def _define(self, name: str, value: ast.AST | None, line: int, text: str | None = None) -> None:
        if (isinstance(value, ast.Call) and _callee_name(value) == "field"
                and any(kw.arg == "default" for kw in value.keywords)):
            value = next(kw.value for kw in value.keywords if kw.arg == "default")  # dataclasses.field(default=...)
        literal = const_eval(value, self.env_stack[-1]) if value is not None else _MISSING
        self.facts.definitions.append(Definition(
            name=name, literal=literal, text=text if text is not None else (_text(value) if value is not None else ""),
            file=self.sf.rel, line=line,
            prefix=_path_prefix(name, value, self.aliases) if name.endswith("_files") and value is not None else None))

    # -- scopes: constant names visible to dataclass fields (`num_iterations = a + b`)
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        self.env_stack.append(dict(self.env_stack[0]))
        for stmt in node.body:
            self.visit(stmt)
        self.env_stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        self.env_stack.append({})
        for stmt in node.body:
            self.visit(stmt)
        self.env_stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    # -- assignments: compiler settings, tracked definitions, environment variables
    def _assign_target(self, target: ast.expr, value: ast.expr, line: int, aug: ast.operator | None = None) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) and aug is None:
                for t, v in zip(target.elts, value.elts):
                    self._assign_target(t, v, line)
            else:
                for t in target.elts:
                    self._assign_target(t, value, line, aug=aug)
            return
        key = _config_key(self.aliases.qualname(target))
        if key:
            if aug is not None:
                self.facts.settings.append(Site(key=key, value=f"<{type(aug).__name__}> {_text(value)}",
                                                text=_short(value), file=self.sf.rel, line=line))
            else:
                self._setting(key, value, line)
        if isinstance(target, ast.Subscript) and self.aliases.qualname(target.value) == "os.environ":
            name = const_eval(target.slice)
            if isinstance(name, str):
                self._env_setting(name, value, line)
        name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None
        if name in TRACKED_NAMES and not _passes_through(name, value):
            if aug is not None:
                self._define(name, None, line, text=f"{_text(target)} {_op_text(aug)}= {_text(value)}")
            else:
                self._define(name, value, line)
        if isinstance(target, ast.Name) and aug is None:
            val = const_eval(value, self.env_stack[-1])
            if val is not _MISSING:
                self.env_stack[-1][target.id] = val

    def _env_setting(self, name: str, value: ast.AST, line: int) -> None:
        if name.startswith(COMPILER_ENV_PREFIXES):
            self._setting(f"env:{name}", value, line)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._assign_target(target, node.value, node.lineno)
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._assign_target(node.target, node.value, node.lineno)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self._assign_target(node.target, node.value, node.lineno, aug=node.op)

    def visit_Dict(self, node: ast.Dict) -> None:
        for k, v in zip(node.keys, node.values):
            if (isinstance(k, ast.Constant) and k.value in TRACKED_NAMES and v is not None
                    and not _passes_through(str(k.value), v)):
                self._define(str(k.value), v, v.lineno)
        self.generic_visit(node)

    # -- calls: torch.compile, config.patch, setattr, os.environ, subprocess, constructors
    def visit_Call(self, node: ast.Call) -> None:
        qual = self.aliases.qualname(node.func)
        callee = _callee_name(node)
        line = node.lineno

        if qual in {"torch.compile", "torch.compiler.compile"}:
            self._compile_flags(node)
        elif qual == "functools.partial" and node.args and self.aliases.qualname(node.args[0]) == "torch.compile":
            self._compile_flags(node)
        elif (isinstance(node.func, ast.Attribute) and node.func.attr == "compile" and qual is None
              and any(kw.arg in COMPILE_KWARGS or kw.arg is None for kw in node.keywords)):
            self._compile_flags(node)  # nn.Module.compile(...)
        elif qual == "torch._dynamo.optimize":
            for arg in node.args:
                self._site("_dynamo.optimize", arg, line, self.facts.compile_flags)
            self._compile_flags(node)

        if isinstance(node.func, ast.Attribute) and node.func.attr in {"patch", "update"}:
            module = _config_module(self.aliases.qualname(node.func.value))
            if module:
                self._patch(module, node)
        if isinstance(node.func, ast.Name) and node.func.id == "setattr" and len(node.args) >= 3:
            module = _config_module(self.aliases.qualname(node.args[0]))
            attr = const_eval(node.args[1])
            if module and isinstance(attr, str):
                self._setting(f"{module}.{attr}", node.args[2], line)
        if qual in {"os.environ.setdefault", "os.putenv"} and len(node.args) >= 2:
            name = const_eval(node.args[0])
            if isinstance(name, str):
                self._env_setting(name, node.args[1], line)
        if qual == "os.environ.update":
            for kw in node.keywords:
                if kw.arg:
                    self._env_setting(kw.arg, kw.value, line)
            for arg in node.args:
                if isinstance(arg, ast.Dict):
                    for k, v in zip(arg.keys, arg.values):
                        name = const_eval(k) if k is not None else _MISSING
                        if isinstance(name, str):
                            self._env_setting(name, v, line)

        if qual in SUBPROCESS_CALLS or (qual or "").startswith("os.exec") or (qual or "").startswith("os.spawn"):
            self._subprocess(node)
        if qual and (qual.startswith("pip.") or qual.startswith("pip._internal")):
            self.facts.installs.append(Site(key="pip (in Python)", value=_text(node), text=_short(node),
                                            file=self.sf.rel, line=line))

        # Tracked names passed to constructors of local classes, dict(...), replace(...), add_argument(...)
        if (callee in self.local_classes and isinstance(node.func, ast.Name)) or callee in {"dict", "replace",
                                                                                            "SimpleNamespace"}:
            for kw in node.keywords:
                if kw.arg in TRACKED_NAMES and not _passes_through(kw.arg, kw.value):
                    self._define(kw.arg, kw.value, kw.value.lineno)
        if callee == "add_argument" and node.args:
            flag = const_eval(node.args[0])
            if isinstance(flag, str) and flag.lstrip("-").replace("-", "_") in TRACKED_NAMES:
                default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
                self._define(flag.lstrip("-").replace("-", "_"), default, line,
                             text=_text(default) if default is not None else "(argparse option without default)")
        self.generic_visit(node)

    def _compile_flags(self, node: ast.Call) -> None:
        for kw in node.keywords:
            self._compile_keyword(kw.arg, kw.value, node.lineno)

    def _compile_keyword(self, arg: str | None, value: ast.expr, line: int) -> None:
        if arg is None:
            expanded = self._resolve_kwargs(value)
            if expanded is None:
                self.facts.compile_flags.append(Site(key="**", value=_text(value), text=f"**{_short(value)}",
                                                     file=self.sf.rel, line=line))
            else:
                for k, v in expanded:
                    self._compile_keyword(k, v, line)
            return
        if arg == "options":
            options = self._resolve_dict(value)
            if options is not None:
                for k, v in options:
                    self._site(f"options.{k}", v, line, self.facts.compile_flags)
                return
        self._site(arg, value, line, self.facts.compile_flags)

    def _resolve_dict(self, node: ast.expr, depth: int = 0) -> list[tuple[str, ast.expr]] | None:
        """The (key, value) pairs of a dict literal or dict(...) call, following one plain name to its assignment."""
        if isinstance(node, ast.Dict):
            pairs = []
            for k, v in zip(node.keys, node.values):
                key = const_eval(k) if k is not None else _MISSING
                if not isinstance(key, str):
                    return None
                pairs.append((key, v))
            return pairs
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            if any(kw.arg is None for kw in node.keywords):
                return None
            return [(kw.arg, kw.value) for kw in node.keywords if kw.arg]
        if isinstance(node, ast.Name) and depth < 2:
            values = self.sf.assigns.get(node.id, [])
            if len(values) == 1:
                return self._resolve_dict(values[0], depth + 1)
        return None

    def _resolve_kwargs(self, node: ast.expr) -> list[tuple[str, ast.expr]] | None:
        return self._resolve_dict(node)

    def _patch(self, module: str, node: ast.Call) -> None:
        for kw in node.keywords:
            if kw.arg:
                self._setting(f"{module}.{kw.arg}", kw.value, node.lineno)
            else:
                pairs = self._resolve_dict(kw.value)
                for k, v in pairs or []:
                    self._setting(f"{module}.{k}", v, node.lineno)
                if pairs is None:
                    self.facts.settings.append(Site(key=f"{module}.**", value=_text(kw.value), text=_short(kw.value),
                                                    file=self.sf.rel, line=node.lineno))
        if node.args:
            first = node.args[0]
            name = const_eval(first)
            if isinstance(name, str) and len(node.args) >= 2:
                self._setting(f"{module}.{name}", node.args[1], node.lineno)
            else:
                pairs = self._resolve_dict(first)
                for k, v in pairs or []:
                    self._setting(f"{module}.{k}", v, node.lineno)
                if pairs is None:
                    self.facts.settings.append(Site(key=f"{module}.*", value=_text(first), text=_short(first),
                                                    file=self.sf.rel, line=node.lineno))

    def _subprocess(self, node: ast.Call) -> None:
        if not node.args:
            return
        first = node.args[0]
        value = const_eval(first)
        commands: list[list[str]] = []
        if isinstance(value, str):
            commands = [c.argv for c in parse_shell(value)[0]]
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            argv = list(value)
            if argv and PurePosixPath(argv[0]).name in {"sh", "bash", "zsh"} and "-c" in argv:
                idx = argv.index("-c")
                commands = [c.argv for c in parse_shell(" ".join(argv[idx + 1:idx + 2]))[0]]
            else:
                commands = [argv]
        for argv in commands:
            what = install_command(argv)
            if what:
                self.facts.installs.append(Site(key=what, value=" ".join(argv), text=_short(node),
                                                file=self.sf.rel, line=node.lineno))


def _path_prefix(name: str, value: ast.AST, aliases: Aliases) -> frozenset[str] | None:
    """For `os.path.join(d, x.name)`, `str(Path(d) / x.name)`, `f"{d}/{x.name}"` or `d + x.name`: the variable names
    that make up the folder put in front of the pattern; None for any other form or a folder with literal parts."""
    if isinstance(value, ast.Call) and _callee_name(value) == "str" and len(value.args) == 1:
        return _path_prefix(name, value.args[0], aliases)
    parts: list[ast.AST]
    if isinstance(value, ast.Call) and aliases.qualname(value.func) in {"os.path.join", "posixpath.join"}:
        if not value.args or not _passes_through(name, value.args[-1]):
            return None
        parts = list(value.args[:-1])
    elif isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Div)):
        if not _passes_through(name, value.right):
            return None
        parts = [value.left]
    elif isinstance(value, ast.JoinedStr) and value.values:
        last = value.values[-1]
        if not (isinstance(last, ast.FormattedValue) and _passes_through(name, last.value)):
            return None
        parts = list(value.values[:-1])
    else:
        return None
    names: set[str] = set()
    for part in parts:
        for n in ast.walk(part):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.strip("/"):
                return None  # a literal folder name: not the same place
            if isinstance(n, ast.Call):
                qual = aliases.qualname(n.func)
                if qual not in {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"} and _callee_name(n) != "str":
                    return None
            if isinstance(n, ast.Name) and not any(isinstance(c, ast.Call) and c.func is n for c in ast.walk(part)):
                names.add(n.id)
    return frozenset(names)


def _passes_through(name: str, value: ast.AST) -> bool:
    """`loader(val_files=args.val_files)` or `val_files = cfg.val_files` hands the value on without changing it."""
    return (isinstance(value, ast.Name) and value.id == name) or (isinstance(value, ast.Attribute)
                                                                   and value.attr == name)


def _op_text(op: ast.operator) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
            ast.Pow: "**"}.get(type(op), "?")


def _assignments_by_name(tree: ast.Module) -> dict[str, list[ast.expr]]:
    out: dict[str, list[ast.expr]] = {}

    def add(target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            out.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    add(t, v)
            else:
                for t in target.elts:
                    add(t, value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            add(node.target, node.value)
        elif isinstance(node, ast.NamedExpr):
            add(node.target, node.value)
    return out


def collect_file_facts(program: Program) -> FileFacts:
    local_classes = set(program.classes)
    facts = FileFacts()
    for sf in program.parsed:
        collector = _FactCollector(sf, local_classes)
        assert sf.tree is not None
        collector.visit(sf.tree)
        facts.compile_flags += collector.facts.compile_flags
        facts.settings += collector.facts.settings
        facts.definitions += collector.facts.definitions
        facts.installs += collector.facts.installs
    # Environment set by run.sh counts as compiler settings too.
    exported: dict[str, tuple[int, str]] = {}
    for line, name, value in program.run_sh_exports:
        exported[name] = (line, value)
    for line, name, value in program.run_sh_exports:
        if name.startswith(COMPILER_ENV_PREFIXES):
            facts.settings.append(Site(key=f"env:{name}", value=repr(value), text=f"{name}={value}", file=RUN_SCRIPT,
                                       line=line, literal=value))
    for cmd in program.run_sh or []:
        for name, value in cmd.env.items():
            if name.startswith(COMPILER_ENV_PREFIXES):
                facts.settings.append(Site(key=f"env:{name}", value=repr(value), text=f"{name}={value}",
                                           file=RUN_SCRIPT, line=cmd.line, literal=value))
        what = install_command(cmd.argv)
        if what:
            facts.installs.append(Site(key=what, value=" ".join(cmd.argv), text=" ".join(cmd.argv), file=RUN_SCRIPT,
                                       line=cmd.line))
    return facts


# -----------------------------------------------------------------------------
# The trace: the entry script's statements in order, calls to local functions inlined


@dataclass(frozen=True)
class Event:
    kind: str  # loop_enter, loop_exit, backward, clock, stop, start, sync, val_loader, reduce, div, save, restore
    key: str
    sf: SourceFile
    node: ast.AST
    depth: int
    clock: str = ""  # for clock/stop: the clock function's qualified name


@dataclass
class Span:
    """One loop as met in the trace: its node and the indexes of its enter and exit events."""

    node: ast.For | ast.AsyncFor | ast.While
    sf: SourceFile
    enter: int
    exit: int
    depth: int

    def contains(self, index: int) -> bool:
        return self.enter < index < self.exit


class Tracer:
    def __init__(self, program: Program):
        self.program = program
        self.events: list[Event] = []
        self.stack: list[ast.AST] = []
        self.bindings: list[dict[str, str]] = [{}]  # parameter name -> argument text, per inlined call
        self._calls: dict[int, list[ast.Call]] = {}  # statement id -> its calls in source order
        self._memo: dict[tuple[str, int], object] = {}  # per-node facts that do not depend on the call path
        self.loop_depth = 0

    def run(self, sf: SourceFile) -> list[Event]:
        assert sf.tree is not None
        self._block(sf.tree.body, sf)
        return self.events

    def _memoized(self, what: str, node: ast.AST, compute: Callable[[], object]) -> object:
        key = (what, id(node))
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _key(self, node: ast.AST) -> str:
        """An expression's text, with the parameters of inlined functions replaced by the caller's arguments."""
        if isinstance(node, ast.Name) and node.id in self.bindings[-1]:
            return self.bindings[-1][node.id]
        return _text(node)

    def _bind(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call) -> dict[str, str]:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if isinstance(call.func, ast.Attribute) and params and params[0] in {"self", "cls"}:
            params = params[1:]
        binding: dict[str, str] = {}
        for name, arg in zip(params, call.args):
            if isinstance(arg, ast.Starred):
                break
            binding[name] = self._key(arg)
        names = set(params) | {a.arg for a in fn.args.kwonlyargs}
        for kw in call.keywords:
            if kw.arg in names:
                binding[kw.arg] = self._key(kw.value)
        return binding

    def _emit(self, kind: str, key: str, sf: SourceFile, node: ast.AST, clock: str = "") -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(Event(kind, key, sf, node, self.loop_depth, clock))

    def _block(self, stmts: Iterable[ast.stmt], sf: SourceFile) -> None:
        for stmt in stmts:
            if len(self.events) >= MAX_EVENTS:
                return
            self._stmt(stmt, sf)

    def _stmt(self, stmt: ast.stmt, sf: SourceFile) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            self._emit("loop_enter", "", sf, stmt)
            self.loop_depth += 1
            self._expr(stmt.iter if isinstance(stmt, (ast.For, ast.AsyncFor)) else stmt.test, sf)
            self._block(stmt.body, sf)
            self._block(stmt.orelse, sf)
            self.loop_depth -= 1
            self._emit("loop_exit", "", sf, stmt)
            return
        if isinstance(stmt, ast.If):
            self._expr(stmt.test, sf)
            self._block(stmt.body, sf)
            self._block(stmt.orelse, sf)
            return
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self._expr(item.context_expr, sf)
            self._block(stmt.body, sf)
            return
        if isinstance(stmt, (ast.Try, ast.TryStar)):
            self._block(stmt.body, sf)
            for handler in stmt.handlers:
                self._block(handler.body, sf)
            self._block(stmt.orelse, sf)
            self._block(stmt.finalbody, sf)
            return
        if isinstance(stmt, ast.Match):
            self._expr(stmt.subject, sf)
            for case in stmt.cases:
                self._block(case.body, sf)
            return
        # Simple statements: the calls they make, then what they assign.
        self._expr(stmt, sf)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            self._assignment(stmt, sf)

    def _assignment(self, stmt: ast.Assign | ast.AnnAssign | ast.AugAssign, sf: SourceFile) -> None:
        value = stmt.value
        if value is None:
            return
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if len(targets) != 1 or isinstance(targets[0], (ast.Tuple, ast.List)):
            return
        target = targets[0]
        key = self._key(target)
        clock = self._memoized("clock", stmt, lambda: _clock_in(value, sf))  # type: ignore[arg-type]
        if isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.op, ast.Add) and clock:
                self._emit("stop", key, sf, stmt, clock)
            elif isinstance(stmt.op, (ast.Div, ast.FloorDiv)):
                self._emit("div", key, sf, stmt)
            return
        if clock and isinstance(value, ast.Call) and sf.aliases.qualname(value.func) in CLOCKS:
            self._emit("start", key, sf, stmt, clock)
        elif clock and isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and key in _names_in(value):
            self._emit("stop", key, sf, stmt, clock)
        if _is_average(value, sf):
            self._emit("div", key, sf, stmt)

    def _expr(self, node: ast.AST, sf: SourceFile) -> None:
        calls = self._calls.get(id(node))
        if calls is None:
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            calls.sort(key=lambda c: (getattr(c, "lineno", 0), getattr(c, "col_offset", 0)))
            self._calls[id(node)] = calls
        for call in calls:
            self._call(call, sf)

    def _call(self, node: ast.Call, sf: SourceFile) -> None:
        qual = sf.aliases.qualname(node.func)
        name = _callee_name(node)
        if name == "backward" or qual == "torch.autograd.backward":
            self._emit("backward", "", sf, node)
        if qual in CLOCKS:
            self._emit("clock", "", sf, node, qual)
        if name == "synchronize":
            self._emit("sync", "", sf, node)
        if name == "state_dict":
            self._emit("save", "", sf, node)
        if name == "load_state_dict":
            self._emit("restore", "", sf, node)
        if name == "div_" and isinstance(node.func, ast.Attribute):
            self._emit("div", self._key(node.func.value), sf, node)
        if _is_dist_reduce(node, sf):
            arg = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "tensor"), None)
            if arg is not None:
                self._emit("reduce", self._key(arg), sf, node)
        if self._memoized("val_files", node, lambda: any(
                _mentions_val_files(a, sf) for a in list(node.args) + [kw.value for kw in node.keywords])):
            self._emit("val_loader", "", sf, node)
        if qual is not None or name is None:
            return  # a library call (or a computed callee): nothing local to follow
        for target, target_sf in self._local_targets(node, name, sf):
            if target in self.stack or len(self.stack) >= MAX_INLINE_DEPTH:
                continue
            self.stack.append(target)
            self.bindings.append(self._bind(target, node))
            self._block(target.body, target_sf)
            self.bindings.pop()
            self.stack.pop()

    def _local_targets(self, node: ast.Call, name: str, sf: SourceFile
                       ) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, SourceFile]]:
        targets = list(self.program.functions.get(name, []))
        if isinstance(node.func, ast.Name) and name in self.program.classes:
            for cls, cls_sf in self.program.classes[name]:
                for stmt in cls.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
                        targets.append((stmt, cls_sf))
        # Definitions in the caller's own file win: two scripts sharing helper names must not multiply the trace.
        local = [t for t in targets if t[1] is sf]
        return local or targets


def _names_in(node: ast.AST) -> set[str]:
    return {_text(n) for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}


def _clock_in(node: ast.AST, sf: SourceFile) -> str:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            qual = sf.aliases.qualname(n.func)
            if qual in CLOCKS:
                return qual
    return ""


def _is_average(value: ast.expr, sf: SourceFile) -> bool:
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Div, ast.FloorDiv)):
        return True
    if isinstance(value, ast.Call):
        if _callee_name(value) == "mean":
            return True
        if sf.aliases.qualname(value.func) in {"torch.mean", "statistics.mean", "numpy.mean"}:
            return True
    return False


def _is_dist_reduce(node: ast.Call, sf: SourceFile) -> bool:
    qual = sf.aliases.qualname(node.func)
    if qual in {"torch.distributed.all_reduce", "torch.distributed.reduce"}:
        return True
    if isinstance(node.func, ast.Attribute) and node.func.attr == "all_reduce":
        return True
    if isinstance(node.func, ast.Attribute) and node.func.attr == "reduce":
        base = sf.aliases.qualname(node.func.value)
        return base == "torch.distributed" or (isinstance(node.func.value, ast.Name) and node.func.value.id == "dist")
    return False


def _mentions_val_files(node: ast.AST, sf: SourceFile, depth: int = 0) -> bool:
    """Whether an expression uses val_files, also through plain names assigned from it (`pattern = args.val_files`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr == "val_files":
            return True
        if isinstance(n, ast.Name):
            if n.id == "val_files":
                return True
            if depth < 2 and any(_is_path_value(v, sf) and _mentions_val_files(v, sf, depth + 1)
                                 for v in sf.assigns.get(n.id, [])):
                return True
    return False


_PATH_BUILDERS = frozenset({"os.path.join", "glob.glob", "pathlib.Path", "str", "sorted", "list", "Path"})


def _is_path_value(value: ast.AST, sf: SourceFile) -> bool:
    """A pattern or file list (`args.val_files`, `sorted(glob.glob(...))`), not a loader built from one."""
    for n in ast.walk(value):
        if isinstance(n, ast.Call):
            qual = sf.aliases.qualname(n.func) or _callee_name(n)
            if qual not in _PATH_BUILDERS:
                return False
    return True


def _loop_spans(events: list[Event]) -> list[Span]:
    spans: list[Span] = []
    open_: list[tuple[int, Event]] = []
    for i, ev in enumerate(events):
        if ev.kind == "loop_enter":
            open_.append((i, ev))
        elif ev.kind == "loop_exit" and open_:
            start, enter = open_.pop()
            spans.append(Span(node=enter.node, sf=enter.sf, enter=start, exit=i, depth=enter.depth))  # type: ignore[arg-type]
    for start, enter in open_:  # cut short by MAX_EVENTS
        spans.append(Span(node=enter.node, sf=enter.sf, enter=start, exit=len(events), depth=enter.depth))  # type: ignore[arg-type]
    spans.sort(key=lambda s: s.enter)
    return spans


# -----------------------------------------------------------------------------
# Timing, validation and warm-up facts drawn from the trace


@dataclass
class TimingFacts:
    loop: Span | None = None
    stops: list[int] = field(default_factory=list)
    regions: list[tuple[int, int]] = field(default_factory=list)  # (stop index, restart index or loop exit)
    restarted: bool = False
    sync_before_stop: bool = False
    sync_before_start: bool = False
    val_loader_in_loop: bool = False
    val_loader_paused: bool = False
    averaged_reduce: bool = False
    warmup: Span | None = None
    warmup_count: int | None = None
    saved: bool = False
    restores: int = 0
    # Backward passes after the warm-up's restore and before the timed loop (training nobody times).
    untimed_backward: Event | None = None
    # Paused stretches of the timed loop that hold no validation (e.g. the clock stopped around data loading).
    pauses_without_validation: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def trace_facts(program: Program) -> TimingFacts:
    facts = TimingFacts()
    entry = program.entry
    if entry is None or entry.tree is None:
        return facts
    events = Tracer(program).run(entry)
    facts.events = events
    spans = _loop_spans(events)

    stop_indexes = [i for i, ev in enumerate(events) if ev.kind == "stop"]
    loop: Span | None = None
    for idx in reversed(stop_indexes):
        containing = [s for s in spans if s.contains(idx)]
        if containing:
            loop = max(containing, key=lambda s: s.enter)  # innermost
            break
    if loop is None:
        with_both = [s for s in spans
                     if any(events[i].kind == "backward" for i in range(s.enter, s.exit))
                     and any(events[i].kind == "clock" for i in range(s.enter, s.exit))]
        outermost = [s for s in with_both if not any(o is not s and o.contains(s.enter) for o in with_both)]
        loop = outermost[-1] if outermost else None
    facts.loop = loop
    if loop is None:
        return facts

    inside = range(loop.enter + 1, loop.exit)
    facts.stops = [i for i in inside if events[i].kind == "stop"]
    facts.val_loader_in_loop = any(events[i].kind == "val_loader" for i in inside)
    for stop in facts.stops:
        restart = next((i for i in range(stop + 1, loop.exit) if events[i].kind == "start"), None)
        facts.regions.append((stop, restart if restart is not None else loop.exit))
    facts.restarted = bool(facts.regions) and all(end < loop.exit for _, end in facts.regions)
    if facts.stops:
        facts.sync_before_stop = all(_preceded_by_sync(events, i) for i in facts.stops)
        starts = [end for _, end in facts.regions if end < loop.exit]
        facts.sync_before_start = bool(starts) and all(_preceded_by_sync(events, i) for i in starts)
    for start, end in facts.regions:
        region = events[start + 1:end]
        if any(ev.kind == "val_loader" for ev in region):
            facts.val_loader_paused = True
        if not any(ev.kind in {"val_loader", "reduce"} for ev in region):
            facts.pauses_without_validation.append(start)
    facts.averaged_reduce = _averaged_reduce(events[loop.enter + 1:loop.exit])

    # Warm-up: the last loop before the timed loop that runs backward passes.
    before = [s for s in spans if s.exit < loop.enter and not s.contains(loop.enter)
              and any(events[i].kind == "backward" for i in range(s.enter, s.exit))]
    if before:
        last = max(before, key=lambda s: s.exit)
        outer = [s for s in before if s.contains(last.enter) or s is last]
        warm = min(outer, key=lambda s: s.enter)
        facts.warmup = warm
        facts.warmup_count = _loop_count(warm.node, warm.sf)
        facts.saved = any(ev.kind == "save" for ev in events[:warm.enter])
        restores = {(ev.sf.rel, getattr(ev.node, "lineno", 0), getattr(ev.node, "col_offset", 0))
                    for ev in events[warm.exit:loop.enter] if ev.kind == "restore"}
        facts.restores = len(restores)
        last_restore = max((i for i in range(warm.exit, loop.enter) if events[i].kind == "restore"), default=None)
        if last_restore is not None:
            facts.untimed_backward = next((events[i] for i in range(last_restore, loop.enter)
                                           if events[i].kind == "backward"), None)
    return facts


def _averaged_reduce(events: list[Event]) -> bool:
    """A value both divided (or averaged) and passed to dist.all_reduce/dist.reduce within these events."""
    divided = {ev.key for ev in events if ev.kind == "div"}
    return any(ev.kind == "reduce" and ev.key in divided for ev in events)


def _preceded_by_sync(events: list[Event], index: int) -> bool:
    for i in range(index - 1, -1, -1):
        kind = events[i].kind
        if kind == "clock":
            continue
        return kind == "sync"
    return False


def _loop_count(node: ast.AST, sf: SourceFile) -> int | None:
    """How many times a loop runs when that is a constant (`range(warmup_steps)` with `warmup_steps = 30`)."""
    if not isinstance(node, (ast.For, ast.AsyncFor)):
        return None
    env = _module_constants(sf)
    fields = _class_constants(sf)
    it = node.iter
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" and not it.keywords:
        args = [fields.get(a.attr, _MISSING) if isinstance(a, ast.Attribute) else const_eval(a, env) for a in it.args]
        if args and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            try:
                return len(range(*args))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None
        return None
    value = const_eval(it, env)
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(it, ast.Name):
        values = sf.assigns.get(it.id, [])
        if len(values) == 1 and isinstance(values[0], (ast.List, ast.Tuple, ast.Set)):
            return len(values[0].elts)
    return None


def _class_constants(sf: SourceFile) -> dict[str, object]:
    """Constant class fields of the file (`warmup_steps = 30` in Hyperparameters), unless two classes disagree."""
    fields: dict[str, object] = {}
    clashes: set[str] = set()
    assert sf.tree is not None
    for cls in ast.walk(sf.tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        env: dict[str, object] = {}
        for stmt in cls.body:
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
            value = stmt.value if isinstance(stmt, (ast.AnnAssign, ast.Assign)) else None
            if not isinstance(target, ast.Name) or value is None:
                continue
            val = const_eval(value, env)
            if val is _MISSING:
                continue
            env[target.id] = val
            if target.id in fields and not _same_value(fields[target.id], val):
                clashes.add(target.id)
            fields[target.id] = val
    for name in clashes:
        fields.pop(name, None)
    return fields


def _module_constants(sf: SourceFile) -> dict[str, object]:
    env: dict[str, object] = {}
    assert sf.tree is not None
    for stmt in sf.tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            val = const_eval(stmt.value, env)
            if val is not _MISSING:
                env[stmt.targets[0].id] = val
            else:
                env.pop(stmt.targets[0].id, None)
    return env


# -----------------------------------------------------------------------------
# Lexical checks on the timed loop: fixed step count, no clock tampering


_TIME_WORDS = ("time", "elapsed", "deadline", "clock")
_SCHEDULE_WORDS = ("every", "freq", "interval")


def _identifier_reason(ident: str, clock_keys: set[str]) -> str | None:
    low = ident.lower()
    if ident in clock_keys or any(word in low for word in _TIME_WORDS):
        return "time"
    if "loss" in low and not any(word in low for word in _SCHEDULE_WORDS):
        return "loss"
    return None


class _Mentions:
    """Does an expression depend on the clock or on a loss value (following names and local helpers a little way)?"""

    def __init__(self, program: Program, sf: SourceFile, clock_keys: set[str]):
        self.program = program
        self.sf = sf
        self.clock_keys = clock_keys

    def reason(self, node: ast.AST, depth: int = 0, seen: set[str] | None = None) -> str | None:
        seen = set() if seen is None else seen
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                if self.sf.aliases.qualname(n.func) in CLOCKS:
                    return "time"
                name = _callee_name(n)
                if depth < 3 and name and self.sf.aliases.qualname(n.func) is None and name not in seen:
                    seen.add(name)
                    for fn, fn_sf in self.program.functions.get(name, []):
                        sub = _Mentions(self.program, fn_sf, self.clock_keys)
                        for ret in ast.walk(fn):
                            if isinstance(ret, ast.Return) and ret.value is not None:
                                why = sub.reason(ret.value, depth + 1, seen)
                                if why:
                                    return why
            if isinstance(n, ast.Name):
                why = _identifier_reason(n.id, self.clock_keys)
                if why:
                    return why
                if depth < 3 and n.id not in seen:
                    seen.add(n.id)
                    for value in self.sf.assigns.get(n.id, []):
                        why = self.reason(value, depth + 1, seen)
                        if why:
                            return why
            elif isinstance(n, ast.Attribute):
                why = _identifier_reason(n.attr, self.clock_keys) or (
                    "time" if _text(n) in self.clock_keys else None)
                if why:
                    return why
        return None


def _walk_loop_body(stmts: list[ast.stmt], tests: tuple[ast.expr, ...], in_nested_loop: bool
                    ) -> Iterator[tuple[ast.stmt, tuple[ast.expr, ...], bool]]:
    """Statements inside a loop with the `if` tests that guard them (nested defs are skipped)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt, tests, in_nested_loop
        if isinstance(stmt, ast.If):
            yield from _walk_loop_body(stmt.body, tests + (stmt.test,), in_nested_loop)
            yield from _walk_loop_body(stmt.orelse, tests + (stmt.test,), in_nested_loop)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            extra = (stmt.test,) if isinstance(stmt, ast.While) else ()
            yield from _walk_loop_body(stmt.body + stmt.orelse, tests + extra, True)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            yield from _walk_loop_body(stmt.body, tests, in_nested_loop)
        elif isinstance(stmt, (ast.Try, ast.TryStar)):
            inner = stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse + stmt.finalbody
            yield from _walk_loop_body(inner, tests, in_nested_loop)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                yield from _walk_loop_body(case.body, tests, in_nested_loop)


_EXIT_CALLS = frozenset({"sys.exit", "os._exit", "exit", "quit"})


def fixed_steps_violations(program: Program, loop: Span, clock_keys: set[str]) -> list[Violation]:
    node, sf = loop.node, loop.sf
    mentions = _Mentions(program, sf, clock_keys)
    out: list[Violation] = []

    def add(line: int, message: str) -> None:
        out.append(Violation("fixed-steps", sf.rel, line, message))

    bound: ast.expr = node.iter if isinstance(node, (ast.For, ast.AsyncFor)) else node.test
    if isinstance(node, ast.While):
        why = mentions.reason(node.test)
        if why:
            add(node.lineno, f"The training loop condition `{_short(node.test)}` depends on {why}; "
                             "run a fixed number of steps (e.g. `for step in range(train_steps + 1)`).")
    else:
        qual = sf.aliases.qualname(bound.func) if isinstance(bound, ast.Call) else None
        if qual == "itertools.count" or (isinstance(bound, ast.Call) and isinstance(bound.func, ast.Name)
                                         and bound.func.id == "count" and qual in {None, "itertools.count"}):
            add(node.lineno, f"The training loop iterates over `{_short(bound)}`, which never ends by itself; "
                             "run a fixed number of steps (e.g. `for step in range(train_steps + 1)`).")
        else:
            why = mentions.reason(bound)
            if why:
                add(node.lineno, f"The training loop bound `{_short(bound)}` depends on {why}; "
                                 "fix the number of steps before training starts.")

    loop_vars = _names_in(node.target) if isinstance(node, (ast.For, ast.AsyncFor)) else set()
    bound_names = {_text(n) for n in ast.walk(bound) if isinstance(n, (ast.Name, ast.Attribute))} - loop_vars
    bound_names.discard("range")

    for stmt, tests, nested in _walk_loop_body(node.body, (), False):
        # The step budget must not move once the loop runs.
        if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, (ast.Name, ast.Attribute)) and _text(t) in bound_names:
                        counting = (isinstance(node, ast.While) and isinstance(stmt, ast.AugAssign)
                                    and isinstance(stmt.value, ast.Constant))
                        if not counting:
                            add(stmt.lineno, f"`{_text(t)}`, which bounds the training loop, is reassigned inside it; "
                                             "keep the number of steps fixed.")
        exit_kind = None
        if isinstance(stmt, (ast.Break, ast.Continue)) and not nested:
            exit_kind = "break" if isinstance(stmt, ast.Break) else "continue"
        elif isinstance(stmt, ast.Return):
            exit_kind = "return"
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            qual = sf.aliases.qualname(stmt.value.func)
            if qual in _EXIT_CALLS or (isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in {"exit",
                                                                                                         "quit"}):
                exit_kind = "exit"
        if exit_kind is None:
            continue
        for test in tests:
            why = mentions.reason(test)
            if why:
                add(stmt.lineno, f"A `{exit_kind}` in the training loop depends on {why} (`{_short(test)}`); "
                                 "stop only after the fixed number of steps.")
                break
    return out


def _scope_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt
        for field_name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field_name, None)
            if isinstance(inner, list):
                yield from _scope_statements(inner)
        if isinstance(stmt, (ast.Try, ast.TryStar)):
            for handler in stmt.handlers:
                yield from _scope_statements(handler.body)
        if isinstance(stmt, ast.Match):
            for case in stmt.cases:
                yield from _scope_statements(case.body)


def _enclosing_scope(sf: SourceFile, target: ast.AST) -> list[ast.stmt]:
    """The body of the innermost function holding `target`, or the module body."""
    fn = sf.owner(target)
    if fn is not None:
        return fn.body
    assert sf.tree is not None
    return sf.tree.body


def _contains(body: list[ast.stmt], node: ast.AST) -> bool:
    return any(inner is node for stmt in body for inner in ast.walk(stmt))


def clock_tampering_violations(program: Program, facts: TimingFacts) -> list[Violation]:
    """Assignments that move the accumulated time or the start time other than by the anchor's method."""
    assert facts.loop is not None
    events = facts.events
    acc_keys = {events[i].key for i in facts.stops}
    start_keys = {events[end].key for _, end in facts.regions if end < facts.loop.exit}
    loop_node = facts.loop.node
    out: list[Violation] = []
    for key in sorted(acc_keys | start_keys):
        is_attr = "." in key
        statements: list[tuple[ast.stmt, SourceFile]] = []
        for sf in program.parsed:
            assert sf.tree is not None
            if is_attr:
                statements += [(s, sf) for s in ast.walk(sf.tree) if isinstance(s, ast.stmt)]
        if not is_attr:
            clock_events = [events[i] for i in facts.stops if events[i].key == key] + \
                           [events[end] for _, end in facts.regions
                            if end < facts.loop.exit and events[end].key == key]
            bodies: dict[int, tuple[list[ast.stmt], SourceFile]] = {}
            for ev in clock_events:
                assert ev.sf.tree is not None
                body = _enclosing_scope(ev.sf, ev.node)
                bodies[id(body)] = (body, ev.sf)
                # A helper that declares the name global shares it with the module and other such helpers.
                sharing = ev.sf.globals_of(key)
                if sharing:
                    bodies[id(ev.sf.tree.body)] = (ev.sf.tree.body, ev.sf)
                    for fn in sharing:
                        bodies[id(fn.body)] = (fn.body, ev.sf)
            for body, body_sf in bodies.values():
                statements += [(s, body_sf) for s in _scope_statements(body)]
        seen: set[int] = set()
        for stmt, sf in statements:
            if id(stmt) in seen or not isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                continue
            seen.add(id(stmt))
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if not any(_text(t) == key for t in targets):
                continue
            message = _tamper_message(stmt, key, key in acc_keys, loop_node, sf)
            if message:
                out.append(Violation("timing-clock", sf.rel, stmt.lineno, message))
    # The accumulation itself may only convert units.
    for i in facts.stops:
        ev = events[i]
        stmt = ev.node
        value = stmt.value if isinstance(stmt, (ast.AugAssign, ast.Assign)) else None
        if value is None:
            continue
        if ev.clock not in WALL_CLOCKS:
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The training time is accumulated from `{ev.clock}`, which is not wall-clock time; "
                                 "measure real elapsed time as the anchor does (time.perf_counter)."))
        factors = [n.value for n in ast.walk(value) if isinstance(n, ast.Constant)
                   and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
        odd = [f for f in factors if f not in TIME_UNITS]
        if odd:
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The time accumulation `{_short(stmt)}` scales the elapsed time by {odd[0]!r}; "
                                 "add the real elapsed time (unit conversions such as 1000 only)."))
        if not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub) for n in ast.walk(value)):
            out.append(Violation("timing-clock", ev.sf.rel, stmt.lineno,
                                 f"The time accumulation `{_short(stmt)}` does not add an elapsed interval "
                                 "(clock now minus start); accumulate real elapsed time."))
    return out


def _tamper_message(stmt: ast.stmt, key: str, is_acc: bool, loop_node: ast.AST, sf: SourceFile) -> str | None:
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) else None
    if value is None:
        return None
    is_clock = _clock_in(value, sf) != ""
    if is_acc:
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add) and is_clock:
            return None  # the accumulation itself, checked separately
        if isinstance(stmt, ast.Assign) and isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) \
                and is_clock and key in _names_in(value):
            return None
        if isinstance(value, ast.Constant) and value.value in (0, 0.0) and not _contains([loop_node], stmt):  # type: ignore[list-item]
            return None
        return (f"`{_short(stmt)}` changes the accumulated training time `{key}` other than by adding elapsed "
                "clock time; keep the anchor's timing method.")
    if isinstance(stmt, ast.AugAssign):
        return (f"`{_short(stmt)}` shifts the clock start `{key}`; restart the clock only with a fresh "
                "clock reading.")
    if isinstance(value, ast.Call) and sf.aliases.qualname(value.func) in CLOCKS:
        return None
    if isinstance(value, ast.Constant):
        return None
    return (f"`{_short(stmt)}` sets the clock start `{key}` to something other than a fresh clock reading; "
            "restart the clock as the anchor does.")


# -----------------------------------------------------------------------------
# The comparison rules


@dataclass
class _Side:
    program: Program
    files: FileFacts
    timing: TimingFacts


def _syntax_violations(candidate: Program) -> list[Violation]:
    out = []
    for sf in candidate.files:
        if sf.error is not None:
            line = sf.error.lineno or WHOLE_FILE
            detail = sf.error.msg if hasattr(sf.error, "msg") and sf.error.msg else str(sf.error)
            out.append(Violation("syntax", sf.rel, line,
                                 f"{sf.rel} does not parse ({detail}), so the run would fail; fix the syntax error."))
    return out


def _is_coordinate_descent(key: str) -> bool:
    return "coordinate_descent_tuning" in key.lower()


def _enabled(site: Site) -> bool:
    """Whether a setting's value turns a flag on; unknown (non-literal) values count as on."""
    value = site.literal
    if value is _MISSING:
        return True
    if isinstance(value, str):
        return value.strip().lower() not in {"", "0", "false", "no", "off"}
    return bool(value)


def _compile_flag_violations(a: _Side, c: _Side) -> list[Violation]:
    allowed = {(s.key, s.value) for s in a.files.compile_flags}
    anchor_flags = sorted({f"{s.key}={s.value}" for s in a.files.compile_flags})
    shown = ", ".join(anchor_flags) if anchor_flags else "no flags"
    out = []
    for s in c.files.compile_flags:
        if _is_coordinate_descent(s.key):
            continue  # reported by coordinate-descent
        if (s.key, s.value) in allowed:
            continue
        if s.key == "**":
            msg = (f"torch.compile gets keyword arguments from `{s.text}`, which cannot be checked statically; "
                   f"pass the anchor's flags explicitly ({shown}).")
        else:
            msg = (f"torch.compile is called with {s.key}={s.value}, a flag the anchor does not use; "
                   f"use only the anchor's compile flags ({shown}).")
        out.append(Violation("compile-flags", s.file, s.line, msg))
    return out


def _compiler_config_violations(a: _Side, c: _Side) -> list[Violation]:
    allowed = {(s.key, s.value) for s in a.files.settings}
    out = []
    for s in c.files.settings:
        if s.key in RECOMPILE_KEYS or _is_coordinate_descent(s.key):
            continue  # their own rules
        if (s.key, s.value) in allowed:
            continue
        name = s.key[4:] if s.key.startswith("env:") else s.key
        where = "environment variable" if s.key.startswith("env:") else "compiler setting"
        anchor_values = sorted({x.value for x in a.files.settings if x.key == s.key})
        had = f" (the anchor sets {anchor_values[0]})" if anchor_values else ""
        out.append(Violation("compiler-config", s.file, s.line,
                             f"The {where} {name} = {s.text} is not in the anchor{had}; "
                             "remove it and keep the anchor's compiler configuration."))
    return out


def _recompile_limit_violations(a: _Side, c: _Side) -> list[Violation]:
    anchor_sites = [s for s in a.files.settings if s.key in RECOMPILE_KEYS]
    cand_sites = [s for s in c.files.settings if s.key in RECOMPILE_KEYS]
    anchor_values = {s.value for s in anchor_sites}
    out = []
    for s in cand_sites:
        if s.value not in anchor_values:
            expected = f"the anchor's {sorted(anchor_values)[0]}" if anchor_values else "the default (the anchor sets none)"
            out.append(Violation("recompile-limit", s.file, s.line,
                                 f"recompile_limit is set to {s.text}; keep {expected}."))
    if anchor_sites and not cand_sites:
        entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
        out.append(Violation("recompile-limit", entry, WHOLE_FILE,
                             f"The anchor sets torch._dynamo.config.recompile_limit = {anchor_sites[0].value} and the "
                             "candidate no longer does; keep that setting."))
    return out


def _coordinate_descent_violations(a: _Side, c: _Side) -> list[Violation]:
    out = []
    for s in list(c.files.settings) + list(c.files.compile_flags):
        if _is_coordinate_descent(s.key) and _enabled(s):
            out.append(Violation("coordinate-descent", s.file, s.line,
                                 f"coordinate_descent_tuning is enabled ({s.key} = {s.text}); it is banned because "
                                 "it makes compilation take about 30 minutes, so remove it."))
    return out


def _definition_violations(a: _Side, c: _Side, names: Iterable[str], rule: str, what: str) -> list[Violation]:
    out = []
    entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
    for name in names:
        adefs = [d for d in a.files.definitions if d.name == name]
        cdefs = [d for d in c.files.definitions if d.name == name]
        a_literals = [d.literal for d in adefs if d.literal is not _MISSING]
        a_exprs = {d.text for d in adefs if d.literal is _MISSING}
        for d in cdefs:
            if d.prefix is not None and any(x.prefix == d.prefix for x in adefs):
                continue  # the same data folder joined differently (os.path.join, pathlib, f-string): same files
            if d.literal is not _MISSING:
                if any(_same_value(d.literal, v) for v in a_literals):
                    continue
                if a_literals:
                    expected = f"the anchor's {a_literals[0]!r}"
                else:
                    expected = "what the anchor computes"
                out.append(Violation(rule, d.file, d.line,
                                     f"{name} is {d.literal!r} here instead of {expected}; {what}."))
            elif d.text not in a_exprs:
                out.append(Violation(rule, d.file, d.line,
                                     f"{name} is set to `{_shorten(d.text)}`, which the anchor does not do; {what}."))
        if a_literals and not cdefs:
            out.append(Violation(rule, entry, WHOLE_FILE,
                                 f"{name} (the anchor's {a_literals[0]!r}) is no longer defined; {what}."))
    return out


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loop_line(side: _Side) -> tuple[str, int]:
    loop = side.timing.loop
    if loop is None:
        entry = side.program.entry
        return (entry.rel if entry else ENTRY_SCRIPT, WHOLE_FILE)
    return loop.sf.rel, loop.node.lineno


def _timing_violations(a: _Side, c: _Side) -> list[Violation]:
    """timing-clock, val-loader, val-reduce, warmup and fixed-steps: the rules that need the timed loop."""
    at, ct = a.timing, c.timing
    out: list[Violation] = []
    if at.loop is None:
        # Nothing in the anchor to compare with; still reject early stops in whatever loop the candidate times.
        if ct.loop is not None:
            out += fixed_steps_violations(c.program, ct.loop, _clock_keys(ct))
        return out
    if ct.loop is None:
        entry = c.program.entry.rel if c.program.entry else ENTRY_SCRIPT
        out.append(Violation("timing-clock", entry, WHOLE_FILE,
                             "No training loop that runs backward passes and reads the clock was found; keep the "
                             "anchor's timed loop (accumulate time.perf_counter() intervals, paused for validation)."))
        return out
    file, line = _loop_line(c)

    # timing-clock
    if at.stops and not ct.stops:
        out.append(Violation("timing-clock", file, line,
                             "The training loop no longer stops the clock by adding the elapsed time to an "
                             "accumulator before validation; keep the anchor's `training_time_ms += ...` pause."))
    if at.stops and ct.stops:
        if at.restarted and not ct.restarted:
            stop = ct.events[ct.stops[0]]
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is stopped here but never restarted with a fresh reading later in the "
                                 "training loop; restart it after validation as the anchor does."))
        if at.sync_before_stop and not ct.sync_before_stop:
            stop = next(ct.events[i] for i in ct.stops if not _preceded_by_sync(ct.events, i))
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is read without a torch.cuda.synchronize() just before it, so queued "
                                 "GPU work escapes the measurement; synchronize before stopping the clock."))
        if at.sync_before_start and ct.restarted and not ct.sync_before_start:
            start = next(ct.events[end] for _, end in ct.regions
                         if end < ct.loop.exit and not _preceded_by_sync(ct.events, end))
            out.append(Violation("timing-clock", start.sf.rel, start.node.lineno,  # type: ignore[attr-defined]
                                 "The clock restarts without a torch.cuda.synchronize() just before it, so "
                                 "validation work leaks into the timed steps; synchronize before restarting."))
    if ct.stops:
        out += clock_tampering_violations(c.program, ct)
    if at.stops and not at.pauses_without_validation:
        for i in ct.pauses_without_validation:
            stop = ct.events[i]
            out.append(Violation("timing-clock", stop.sf.rel, stop.node.lineno,  # type: ignore[attr-defined]
                                 "The clock is paused here around work that is not validation; only validation may "
                                 "run while the clock is stopped."))

    # val-loader
    if at.val_loader_paused and not ct.val_loader_paused:
        if ct.val_loader_in_loop:
            ev = next(e for e in ct.events[ct.loop.enter:ct.loop.exit] if e.kind == "val_loader")
            out.append(Violation("val-loader", ev.sf.rel, ev.node.lineno,  # type: ignore[attr-defined]
                                 "The validation loader is built while the training clock is running; stop the "
                                 "clock before validation as the anchor does."))
        else:
            out.append(Violation("val-loader", file, line,
                                 "The training loop does not build a fresh validation loader from val_files for each "
                                 "validation; create it inside the validation block as the anchor does."))
    elif at.val_loader_in_loop and not ct.val_loader_in_loop:
        out.append(Violation("val-loader", file, line,
                             "The training loop does not build a fresh validation loader from val_files for each "
                             "validation; create it inside the validation block as the anchor does."))

    # val-reduce (whether validation runs while the clock is stopped is val-loader's and timing-clock's concern)
    if at.averaged_reduce and not ct.averaged_reduce:
        out.append(Violation("val-reduce", file, line,
                             "The validation loss is not both divided by the number of validation steps and averaged "
                             "across ranks with dist.all_reduce/dist.reduce in the training loop; keep the anchor's "
                             "averaging."))

    # warmup
    if at.warmup is not None:
        if ct.warmup is None:
            out.append(Violation("warmup", file, line,
                                 "No warm-up loop runs before the timed training loop; warm up as the anchor does and "
                                 "restore the initial state afterwards."))
        else:
            wfile, wline = ct.warmup.sf.rel, ct.warmup.node.lineno
            if at.warmup_count is not None and ct.warmup_count is not None and at.warmup_count != ct.warmup_count:
                out.append(Violation("warmup", wfile, wline,
                                     f"The warm-up runs {ct.warmup_count} steps instead of the anchor's "
                                     f"{at.warmup_count}; keep the anchor's warm-up length."))
            if at.saved and not ct.saved:
                out.append(Violation("warmup", wfile, wline,
                                     "The initial model and optimizer state is not saved (state_dict) before the "
                                     "warm-up; save it so that warm-up steps do not count as training."))
            if at.restores and not ct.restores:
                out.append(Violation("warmup", wfile, wline,
                                     "The state is not restored (load_state_dict) after the warm-up, so the warm-up "
                                     "steps train the model untimed; restore the saved initial state."))
            elif ct.restores < min(at.restores, 2):
                out.append(Violation("warmup", wfile, wline,
                                     f"Only {ct.restores} state restore after the warm-up where the anchor has "
                                     f"{at.restores} (model and optimizers); restore everything the anchor restores."))

    if ct.untimed_backward is not None and at.untimed_backward is None:
        ev = ct.untimed_backward
        out.append(Violation("warmup", ev.sf.rel, ev.node.lineno,  # type: ignore[attr-defined]
                             "Backward passes run after the warm-up state is restored and before the timed loop, so "
                             "this training is never timed; train only inside the timed loop."))

    # fixed-steps (presence rule: whatever the anchor itself does is not held against the candidate)
    anchor_fixed = {v.message for v in fixed_steps_violations(a.program, at.loop, _clock_keys(at))}
    out += [v for v in fixed_steps_violations(c.program, ct.loop, _clock_keys(ct)) if v.message not in anchor_fixed]
    return out


def _clock_keys(t: TimingFacts) -> set[str]:
    keys = {t.events[i].key for i in t.stops}
    if t.loop is not None:
        keys |= {t.events[end].key for _, end in t.regions if end < t.loop.exit}
    return keys


def _run_deps_violations(a: _Side, c: _Side) -> list[Violation]:
    allowed = {s.value for s in a.files.installs}
    out = []
    for s in c.files.installs:
        if s.value in allowed:
            continue
        where = "run.sh" if s.file == RUN_SCRIPT else "the training code"
        out.append(Violation("run-deps", s.file, s.line,
                             f"{where} runs `{_shorten(s.value)}` ({s.key}), which changes the installed packages; "
                             "dependencies are fixed, so remove it."))
    return out


def _launches(program: Program) -> list[Launch]:
    exported: dict[str, str] = {}
    exports_by_line = sorted(program.run_sh_exports)
    out = []
    for cmd in program.run_sh or []:
        for line, name, value in exports_by_line:
            if line <= cmd.line:
                exported[name] = value
        launch = torchrun_launch(cmd, exported)
        if launch:
            out.append(launch)
    return out


def _launch_violations(a: _Side, c: _Side) -> list[Violation]:
    if a.program.run_sh is None:
        return []
    a_launches = _launches(a.program)
    if not a_launches:
        return []
    if c.program.run_sh is None:
        return [Violation("launch-shape", RUN_SCRIPT, WHOLE_FILE,
                          "The candidate has no run.sh; keep the anchor's run.sh and its torchrun launch.")]
    c_launches = _launches(c.program)
    if not c_launches:
        return [Violation("launch-shape", RUN_SCRIPT, WHOLE_FILE,
                          "run.sh no longer launches training with torchrun; keep the anchor's launch "
                          f"(--nproc_per_node={a_launches[0].nproc}).")]
    ref = a_launches[0]
    out = []
    for launch in c_launches:
        if launch.nproc != ref.nproc:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"torchrun runs with --nproc_per_node={launch.nproc} instead of the anchor's "
                                 f"{ref.nproc}; keep the anchor's GPU count."))
        if launch.nnodes != ref.nnodes:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"torchrun runs with --nnodes={launch.nnodes} instead of the anchor's {ref.nnodes}; "
                                 "keep the anchor's launch shape."))
        if launch.standalone != ref.standalone:
            state = "adds" if launch.standalone else "drops"
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"The torchrun launch {state} --standalone; keep the anchor's launch options."))
        if launch.visible_devices != ref.visible_devices:
            out.append(Violation("launch-shape", RUN_SCRIPT, launch.line,
                                 f"CUDA_VISIBLE_DEVICES is {launch.visible_devices!r} for the launch instead of the "
                                 f"anchor's {ref.visible_devices!r}; keep the GPUs the anchor uses."))
    return out


def check_rules(anchor_dir: Path | str, candidate_dir: Path | str) -> RuleReport:
    """Compare a candidate folder with its anchor; raises UserError on bad input (missing folders, broken anchor)."""
    anchor = load_program(Path(anchor_dir), role="anchor")
    broken = [sf for sf in anchor.files if sf.error is not None]
    if broken:
        sf = broken[0]
        raise UserError(f"The anchor's {sf.rel} does not parse (line {sf.error.lineno}: "  # type: ignore[union-attr]
                        f"{sf.error.msg if sf.error else ''}); pass a valid anchor record folder.")
    candidate = load_program(Path(candidate_dir), role="candidate")

    violations = _syntax_violations(candidate)
    try:
        a = _Side(anchor, collect_file_facts(anchor), trace_facts(anchor))
    except RecursionError:
        raise UserError(f"The anchor in {anchor_dir} is nested too deeply to analyse; pass a normal record "
                        "folder.") from None
    try:
        c = _Side(candidate, collect_file_facts(candidate), trace_facts(candidate))
    except RecursionError:
        entry_rel = candidate.entry.rel if candidate.entry else ENTRY_SCRIPT
        violations.append(Violation("syntax", entry_rel, WHOLE_FILE,
                                    "The code is nested too deeply to analyse, so it cannot be checked; "
                                    "simplify the deeply nested expressions."))
        return RuleReport(sorted(violations, key=Violation.sort_key))

    violations += _run_deps_violations(a, c)
    violations += _launch_violations(a, c)
    entry = candidate.entry
    if entry is not None and entry.tree is not None:
        violations += _compile_flag_violations(a, c)
        violations += _compiler_config_violations(a, c)
        violations += _recompile_limit_violations(a, c)
        violations += _coordinate_descent_violations(a, c)
        violations += _definition_violations(a, c, VAL_NAMES, "val-constants",
                                             "validation must stay unchanged, so restore the anchor's value")
        violations += _definition_violations(a, c, ("train_files",), "train-files",
                                             "the training data stream must stay unchanged, so restore the anchor's "
                                             "value")
        violations += _timing_violations(a, c)
    else:
        # Only compiler settings coming from run.sh can be checked when the script does not parse.
        violations += [v for v in _coordinate_descent_violations(a, c) if v.file == RUN_SCRIPT]
        violations += [v for v in _compiler_config_violations(a, c) if v.file == RUN_SCRIPT]

    unique = {(v.rule, v.file, v.line, v.message): v for v in violations}
    return RuleReport(sorted(unique.values(), key=Violation.sort_key))
