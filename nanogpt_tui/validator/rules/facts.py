"""Per-file facts: compile flags, compiler settings, tracked constants and package installs (AST and run.sh)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from nanogpt_tui.validator.rules.names import (
    COMPILE_KWARGS,
    COMPILER_ENV_PREFIXES,
    CONFIG_MODULES,
    RUN_SCRIPT,
    SUBPROCESS_CALLS,
    TRACKED_NAMES,
)
from nanogpt_tui.validator.rules.program import Program, SourceFile
from nanogpt_tui.validator.rules.pyast import (
    MISSING,
    Aliases,
    callee_name,
    const_eval,
    snippet,
    text_of,
    value_repr,
)
from nanogpt_tui.validator.rules.shell import install_command, parse_shell


@dataclass(frozen=True)
class Site:
    """A fact found at one place: a key (a flag, a setting), a normalised value, its source text, and where."""

    key: str
    value: str
    text: str
    file: str
    line: int
    literal: object = MISSING


@dataclass(frozen=True)
class Definition:
    """A definition of a tracked name (`val_tokens: int = 10485760`, `args.val_files = ...`)."""

    name: str
    literal: object  # the constant value, or MISSING
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
        bucket.append(Site(key=key, value=value_repr(node), text=snippet(node), file=self.sf.rel, line=line,
                           literal=const_eval(node)))

    def _setting(self, key: str, value: ast.AST, line: int) -> None:
        self._site(key, value, line, self.facts.settings)

    def _define(self, name: str, value: ast.AST | None, line: int, text: str | None = None) -> None:
        if (isinstance(value, ast.Call) and callee_name(value) == "field"
                and any(kw.arg == "default" for kw in value.keywords)):
            value = next(kw.value for kw in value.keywords if kw.arg == "default")  # dataclasses.field(default=...)
        literal = const_eval(value, self.env_stack[-1]) if value is not None else MISSING
        self.facts.definitions.append(Definition(
            name=name, literal=literal,
            text=text if text is not None else (text_of(value) if value is not None else ""),
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
                self.facts.settings.append(Site(key=key, value=f"<{type(aug).__name__}> {text_of(value)}",
                                                text=snippet(value), file=self.sf.rel, line=line))
            else:
                self._setting(key, value, line)
        if isinstance(target, ast.Subscript) and self.aliases.qualname(target.value) == "os.environ":
            name = const_eval(target.slice)
            if isinstance(name, str):
                self._env_setting(name, value, line)
        name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None
        if name in TRACKED_NAMES and not _passes_through(name, value):
            if aug is not None:
                self._define(name, None, line, text=f"{text_of(target)} {_op_text(aug)}= {text_of(value)}")
            else:
                self._define(name, value, line)
        if isinstance(target, ast.Name) and aug is None:
            val = const_eval(value, self.env_stack[-1])
            if val is not MISSING:
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
        callee = callee_name(node)
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
                        name = const_eval(k) if k is not None else MISSING
                        if isinstance(name, str):
                            self._env_setting(name, v, line)

        if qual in SUBPROCESS_CALLS or (qual or "").startswith("os.exec") or (qual or "").startswith("os.spawn"):
            self._subprocess(node)
        if qual and (qual.startswith("pip.") or qual.startswith("pip._internal")):
            self.facts.installs.append(Site(key="pip (in Python)", value=text_of(node), text=snippet(node),
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
                             text=text_of(default) if default is not None else "(argparse option without default)")
        self.generic_visit(node)

    def _compile_flags(self, node: ast.Call) -> None:
        for kw in node.keywords:
            self._compile_keyword(kw.arg, kw.value, node.lineno)

    def _compile_keyword(self, arg: str | None, value: ast.expr, line: int) -> None:
        if arg is None:
            expanded = self._resolve_kwargs(value)
            if expanded is None:
                self.facts.compile_flags.append(Site(key="**", value=text_of(value), text=f"**{snippet(value)}",
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
                key = const_eval(k) if k is not None else MISSING
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
                    self.facts.settings.append(Site(key=f"{module}.**", value=text_of(kw.value), text=snippet(kw.value),
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
                    self.facts.settings.append(Site(key=f"{module}.*", value=text_of(first), text=snippet(first),
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
                self.facts.installs.append(Site(key=what, value=" ".join(argv), text=snippet(node),
                                                file=self.sf.rel, line=node.lineno))


def _path_prefix(name: str, value: ast.AST, aliases: Aliases) -> frozenset[str] | None:
    """For `os.path.join(d, x.name)`, `str(Path(d) / x.name)`, `f"{d}/{x.name}"` or `d + x.name`: the variable names
    that make up the folder put in front of the pattern; None for any other form or a folder with literal parts."""
    if isinstance(value, ast.Call) and callee_name(value) == "str" and len(value.args) == 1:
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
                if qual not in {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"} and callee_name(n) != "str":
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
