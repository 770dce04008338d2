"""Where a record's data files resolve to: `train_files` / `val_files` evaluated as the path patterns they name,
so two spellings of the same files (`"data/fineweb10B/x_*.bin"`, `os.path.join(data_path, "data/fineweb10B/x_*.bin")`
with `data_path = os.environ.get("DATA_PATH", ".")`) compare equal and a different folder does not."""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass

from nanogpt_tui.contract.layout import CONTAINER_WORKSPACE
from nanogpt_tui.validator.rules.program import Program, SourceFile
from nanogpt_tui.validator.rules.pyast import assignments_by_name, callee_name

MAX_DEPTH = 12
# Variables set when a run starts (the session's BENCHMARK_* names, torchrun's, the process's own): a path read
# from one of them is not its default at run time, so it cannot be resolved from the code.
RUNTIME_ENV = frozenset({"HOME", "PATH", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TMPDIR", "HOSTNAME", "LANG",
                         "CUDA_VISIBLE_DEVICES", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                         "ROLE_RANK", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS"})
RUNTIME_ENV_PREFIXES = ("BENCHMARK_", "TORCHELASTIC_", "NANOGPT_TUI_")


@dataclass(frozen=True)
class ResolvedPath:
    """The pattern a name's last definition in the entry script resolves to (relative to the record's folder,
    where run.sh starts it), and where that definition is."""

    pattern: str
    file: str
    line: int
    steps: tuple[tuple[int, str], ...] = ()  # (line, ast.dump of the value) of each definition on the way

    def changed_line(self, other: "ResolvedPath") -> int:
        """The first of this path's definitions that `other` has no copy of (where a change was made)."""
        theirs = {dump for _, dump in other.steps}
        return next((line for line, dump in self.steps if dump not in theirs), self.line)


def _definitions(tree: ast.Module, name: str) -> list[tuple[int, ast.expr]]:
    """(line, value) of every assignment to `name` or `<x>.name`, in source order."""
    out = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for t in targets:
            if (isinstance(t, ast.Name) and t.id == name) or (isinstance(t, ast.Attribute) and t.attr == name):
                out.append((node.lineno, value))
    return sorted(out, key=lambda item: item[0])


class _Resolver:
    def __init__(self, program: Program, sf: SourceFile):
        assert sf.tree is not None
        self.sf = sf
        self.assigned = assignments_by_name(sf.tree)
        self.env: dict[str, str] = {}
        for _, env_name, value in program.run_sh_exports:
            self.env[env_name] = value
        for cmd in program.run_sh or []:
            self.env.update(cmd.env)

    def value(self, node: ast.AST, previous: str | None, name: str, depth: int = 0) -> str | None:
        """The string `node` evaluates to, or None where that cannot be told from the code."""
        if depth > MAX_DEPTH:
            return None
        nxt = depth + 1
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if (isinstance(node, ast.Name) and node.id == name) or (isinstance(node, ast.Attribute) and node.attr == name):
            return previous  # the name's own earlier value: `args.val_files = join(d, args.val_files)`
        if isinstance(node, ast.Name):
            values = {ast.dump(v) for v in self.assigned.get(node.id, [])}
            if len(values) != 1:
                return None  # unknown, or assigned several different values
            return self.value(self.assigned[node.id][0], previous, name, nxt)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            values = {ast.dump(v) for v in self.assigned.get(node.attr, [])}
            if len(values) == 1:  # `args.data_path` where the class body says `data_path = ...`
                return self.value(self.assigned[node.attr][0], previous, name, nxt)
            return None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue) and part.format_spec is None and part.conversion == -1:
                    text = self.value(part.value, previous, name, nxt)
                    if text is None:
                        return None
                    parts.append(text)
                else:
                    return None
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            left, right = self.value(node.left, previous, name, nxt), self.value(node.right, previous, name, nxt)
            if left is None or right is None:
                return None
            return left + right if isinstance(node.op, ast.Add) else posixpath.join(left, right)
        if isinstance(node, ast.Call):
            qual = self.sf.aliases.qualname(node.func)
            args = node.args
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if callee_name(node) == "field" and default is not None:  # dataclasses.field(default=...)
                return self.value(default, previous, name, nxt)
            if qual in {"os.path.join", "posixpath.join"} and args and not node.keywords:
                parts = [self.value(a, previous, name, nxt) for a in args]
                return None if any(p is None for p in parts) else posixpath.join(*parts)  # type: ignore[arg-type]
            if (qual in {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"} or callee_name(node) == "str") \
                    and args and not node.keywords:
                parts = [self.value(a, previous, name, nxt) for a in args]
                return None if any(p is None for p in parts) else posixpath.join(*parts)  # type: ignore[arg-type]
            if qual in {"os.environ.get", "os.getenv"} and args and isinstance(args[0], ast.Constant):
                variable = str(args[0].value)
                if variable in self.env:
                    return self.env[variable]  # run.sh sets it
                if variable in RUNTIME_ENV or variable.startswith(RUNTIME_ENV_PREFIXES):
                    return None
                default = args[1] if len(args) > 1 else next((k.value for k in node.keywords if k.arg == "default"),
                                                              None)
                return None if default is None else self.value(default, previous, name, nxt)
        return None


def normalise(pattern: str) -> str:
    """`./data//fineweb10B/x.bin` and `data/fineweb10B/x.bin` are the same files."""
    return posixpath.normpath(pattern)


def resolve_data_path(program: Program, name: str) -> ResolvedPath | None:
    """What `name` (train_files, val_files) resolves to after its last definition in the entry script; None when
    the code does not say (computed at run time, or defined in several files)."""
    entry = program.entry
    if entry is None or entry.tree is None:
        return None
    if any(sf is not entry and sf.tree is not None and _definitions(sf.tree, name) for sf in program.parsed):
        return None
    definitions = _definitions(entry.tree, name)
    if not definitions:
        return None
    resolver = _Resolver(program, entry)
    value: str | None = None
    for _, node in definitions:
        value = resolver.value(node, value, name)
    if value is None:
        return None
    return ResolvedPath(normalise(value), entry.rel, definitions[-1][0],
                        tuple((line, ast.dump(node)) for line, node in definitions))


# Where a session's code reads data from: the shared data volume, mounted read-only at `data/` in the workspace
# (the container contract), holding one copy of each FineWeb shard. Places the agent can write to instead.
DATA_MOUNT = "data"
WRITABLE_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", CONTAINER_WORKSPACE, "/home", "/root", "/run")
SAME, JUDGE, DIFFERENT = "same", "judge", "different"


def compare_data_paths(anchor: str, candidate: str) -> str:
    """Whether two resolved data patterns name the same files: SAME, DIFFERENT, or JUDGE where the code alone cannot
    tell (an absolute folder the session cannot write to, such as a record's own machine path)."""
    if anchor == candidate:
        return SAME
    same_shards = posixpath.basename(anchor) == posixpath.basename(candidate)
    in_mount = candidate == DATA_MOUNT or candidate.startswith(DATA_MOUNT + "/")
    if in_mount and same_shards:
        return SAME  # the read-only data volume holds one copy of these shards, wherever in it they are looked for
    if candidate.startswith("/") and same_shards and not any(
            candidate == root or candidate.startswith(root + "/") for root in WRITABLE_ROOTS):
        return JUDGE  # another machine's layout, or a folder the session cannot fill: the code cannot tell
    return DIFFERENT
