"""Judging one changed place: the kind of a changed literal or a changed structure, with the reason (evidence)."""

from __future__ import annotations

import ast
import copy
import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nanogpt_tui.classify.algorithmic import (
    COMPUTE_METHODS, computes, depth_settings, index_arithmetic_only, is_math_token, is_model_class, model_base,
)
from nanogpt_tui.classify.knobs import (
    _args_with_literal_defaults, _assigns_literal, _is_arithmetic, _is_state_init, KNOB_CLASS,
    _literal_vs_reference, SCHEDULE_SCOPE,
)
from nanogpt_tui.classify.model import (
    ALGORITHMIC, COMPUTATION, Evidence, HYPERPARAMETER, NEUTRAL, PLACEMENT, PLUMBING, SNIPPET_CHARS, SYSTEMS,
)
from nanogpt_tui.classify.neutral import statements_of, _identifiers, LOG_CALLS, _renamed_identifiers, RUN_LABEL, \
    _statement_text
from nanogpt_tui.classify.syntax import (
    _clean, dotted, is_literal, _multiset_difference, SYSTEMS_ENV_PREFIXES, _operators, _safe_unparse, _Shapes, _target_names, _tokens,
)
from nanogpt_tui.classify.systems import (
    _bindings, _custom_op_decorated, _file_handles, _glue, _handle_classes, _is_kernel_file, is_systems_token,
    is_weak_systems_token, KERNEL_NAME, SYSTEMS_SHARE, _triton_decorated,
)


def _code_lines(nodes: Sequence[Any]) -> int:
    """How many lines of code some nodes span: the lines a node starts on, so comments, blank lines and
    docstrings (stripped at parse) do not count, and a call spread over three lines counts three. Logging
    statements (`print0(f"...")`) do not run the training: their lines do not count either."""
    lines: set[int] = set()
    stack = [n for n in nodes if isinstance(n, ast.AST)]
    while stack:
        n = stack.pop()
        if _is_log_statement(n):
            continue
        if getattr(n, "lineno", None):
            lines.add(n.lineno)
        stack.extend(ast.iter_child_nodes(n))
    return len(lines)


def _is_log_statement(node: ast.AST) -> bool:
    """A statement that only logs: a call of a logging function (`print0(...)`, `logger.info(...)`)."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
        and (dotted(node.value.func) or "").split(".")[-1] in LOG_CALLS


# A changed literal weighs half a line of code: retuning a constant is one decision, but the constants retuned
# alongside a new idea are the smaller part of it (a record's step count and lr follow almost every change).
LITERAL_WEIGHT = 0.5
# A function added or removed whole with more lines than this is judged statement by statement (a long
# optimizer step is communication, bookkeeping and maths); shorter ones are one computation.
SPLIT_LINES = 30


def _renamed_definitions(old_tree: ast.AST, new_tree: ast.AST) -> frozenset[str]:
    """Names of functions renamed between the versions (old and new name): one side only, and the other side has a
    function of that many statements with most of them the same (`ns_line_1` -> `XXT`). Their uses name the same
    code, so they are no sign of what kind of work changed."""
    def functions(tree: ast.AST) -> dict[str, Counter[str]]:
        return {n.name: Counter(statements_of(n.body)) for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    old, new = functions(old_tree), functions(new_tree)
    gone, came = set(old) - set(new), set(new) - set(old)
    out: set[str] = set()
    for a in gone:
        for b in came:
            size = max(sum(old[a].values()), sum(new[b].values()))
            if size and sum((old[a] & new[b]).values()) >= 0.6 * size:
                out |= {a, b}
    return frozenset(out)


@functools.lru_cache(maxsize=64)
def _class_bases(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """Each class a file defines at top level, with the dotted names of its bases (`CastedLinear`: `nn.Linear`)."""
    return {n.name: tuple(filter(None, (dotted(b) for b in n.bases))) for n in tree.body if isinstance(n, ast.ClassDef)}


def _definitions(tree: ast.Module) -> dict[tuple[str, ...], ast.AST]:
    """Every class and function of a tree by its path of names (`("GPT", "__init__")`)."""
    out: dict[tuple[str, ...], ast.AST] = {}

    def visit(body: list[ast.stmt], path: tuple[str, ...]) -> None:
        for n in body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.setdefault((*path, n.name), n)
                visit(n.body, (*path, n.name))
    visit(tree.body, ())
    return out


def _defaults(tree: ast.AST) -> list[tuple[ast.expr, str]]:
    """Every parameter default of a tree with its parameter's name (`def f(x, rank=0)`: the `0` and `rank`)."""
    out: list[tuple[ast.expr, str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.arguments):
            positional = [*n.posonlyargs, *n.args]
            out.extend((d, a.arg) for a, d in zip(positional[len(positional) - len(n.defaults):], n.defaults))
            out.extend((d, a.arg) for a, d in zip(n.kwonlyargs, n.kw_defaults) if d is not None)
    return out


def _file_imports(tree: ast.AST) -> frozenset[str]:
    """Every `import:` token of a file's import statements, wherever they are (`import:torch.distributed`)."""
    return frozenset(t for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for t in _tokens(n))


def _module_names(tree: ast.AST) -> frozenset[str]:
    """The names a file's `import` statements bind to modules (`torch`, `dist` of `import torch.distributed as
    dist`, `config` of `import torch._inductor.config as config`)."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out.update(a.asname or a.name.split(".")[0] for a in n.names)
    return frozenset(out)


def _math_names(nodes: Sequence[Any]) -> tuple[str, ...]:
    """The computation names (`lerp_`, `sigmoid`, `polar_express`) some nodes use, last part only."""
    return tuple(t.replace("()", "").split(".")[-1] for n in nodes if isinstance(n, ast.AST) for t in _tokens(n)
                 if is_math_token(t) and not t.startswith("op:"))


def _without(nodes: Sequence[ast.AST], moved: Counter[str]) -> list[ast.AST]:
    """Copies of some nodes without the statements in `moved` (texts of `statements_of`, taken as found): a simple
    statement goes, a compound one goes when its header is in `moved` and nothing of its body is left."""
    def prune(stmts: list[ast.stmt]) -> list[ast.stmt]:
        kept: list[ast.stmt] = []
        for st in stmts:
            for name in ("body", "orelse", "finalbody"):
                inner = getattr(st, name, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    setattr(st, name, prune(inner))
            for h in getattr(st, "handlers", None) or []:
                h.body = prune(h.body)
            text = _statement_text(st)
            body_left = any(getattr(st, name, None) for name in ("body", "orelse", "finalbody", "handlers"))
            if moved[text] > 0 and not body_left:
                moved[text] -= 1
                continue
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While,
                               ast.If, ast.With, ast.AsyncWith)) and not st.body:
                st.body = [ast.Pass()]
            kept.append(st)
        return kept
    copies = [copy.deepcopy(n) for n in nodes]
    out: list[ast.AST] = []
    for n in copies:
        if isinstance(n, ast.stmt):
            out.extend(prune([n]))
        else:
            out.append(n)
    return out


_PATH = re.compile(r"^[\w.*~-]*/[\w./*~-]*$|^[\w*-]+\.(bin|pt|txt|log|json|csv|npy)$")


def _is_path(node: ast.AST) -> bool:
    """A string literal that names a file or folder (`data/fineweb10B/fineweb_train_*.bin`, `../logs/run`)."""
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(_PATH.match(node.value))


@dataclass
class _Scope:
    name: str
    node: ast.AST | None


class PlaceJudge:
    """Judges each changed place between two versions of one file and records it as evidence (`evidence`)."""

    def __init__(self, file: str, old_tree: ast.Module, new_tree: ast.Module,
                 kernel_names: frozenset[str] = frozenset()) -> None:
        self.file = file
        self.shapes = _Shapes()
        self.evidence: list[Evidence] = []
        self.old_tree, self.new_tree = old_tree, new_tree
        self.kernel_names = kernel_names
        self.file_is_systems = _is_kernel_file(file, new_tree) or _is_kernel_file(file, old_tree)
        self.handle_classes = _handle_classes(old_tree) | _handle_classes(new_tree)
        self.handles = set(_file_handles(old_tree, self.handle_classes) | _file_handles(new_tree, self.handle_classes))
        self._function_handles: dict[int, set[str]] = {}  # per enclosing function, filled as needed
        self._ids_old, self._ids_new = _identifiers(old_tree), _identifiers(new_tree)
        self.renamed = _renamed_definitions(old_tree, new_tree)
        self._computes: dict[int, bool] = {}  # per class or function: whether it computes on tensors
        self._keep_alive: list[ast.AST] = []  # keeps those nodes alive so their ids stay unique
        self._literal_default_args = {id(a) for t in (old_tree, new_tree) for a in _args_with_literal_defaults(t)}
        self._old_defs = _definitions(old_tree)
        self._default_names = {id(d): name for t in (old_tree, new_tree) for d, name in _defaults(t)}
        self._imports_old, self._imports_new = _file_imports(old_tree), _file_imports(new_tree)
        self._module_names = _module_names(old_tree) | _module_names(new_tree)
        (names_old, literals_old), (names_new, literals_new) = depth_settings(old_tree), depth_settings(new_tree)
        self._depth_names, self._depth_literals = names_old | names_new, literals_old | literals_new

    def is_sys(self, token: str) -> bool:
        return is_systems_token(token, self.kernel_names)

    # ---- snippets and places

    @staticmethod
    def snippet(node: ast.AST | Sequence[ast.AST] | None) -> str | None:
        if node is None:
            return None
        nodes = list(node) if isinstance(node, (list, tuple)) else [node]
        if not nodes:
            return None
        parts = []
        for n in nodes:
            try:
                text = ast.unparse(n)
            except Exception:  # noqa: BLE001 - unparse of an odd node: fall back to its type
                text = type(n).__name__
            parts.append(" ".join(text.split()))
        text = "; ".join(parts)
        return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"

    @staticmethod
    def line_of(*nodes: Any) -> int | None:
        for n in nodes:
            if isinstance(n, (list, tuple)):
                n = n[0] if n else None
            line = getattr(n, "lineno", None)
            if line:
                return line
        return None

    @staticmethod
    def scope_name(scopes: Sequence[_Scope]) -> str:
        names = [s.name for s in scopes if s.name]
        return ".".join(names) or "<module>"

    # ---- scope properties

    def systems_scope(self, scopes: Sequence[_Scope]) -> str | None:
        if self.file_is_systems:
            return f"{self.file} holds kernels"
        for s in scopes:
            node = s.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decorator = _triton_decorated(node)
                if decorator:
                    return f"inside @{decorator} {node.name}"
                decorator = _custom_op_decorated(node)
                if decorator:
                    return f"inside the custom op @{decorator} {node.name}"
                if KERNEL_NAME.search(node.name):
                    return f"inside the kernel function {node.name}"
        return None

    @staticmethod
    def knob_scope(scopes: Sequence[_Scope]) -> str | None:
        for s in reversed(scopes):
            node = s.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and SCHEDULE_SCOPE.search(node.name):
                return f"schedule function {node.name}"
            if isinstance(node, ast.ClassDef) and KNOB_CLASS.search(node.name):
                return f"hyperparameter class {node.name}"
        return None

    @staticmethod
    def in_log_call(ancestors: Sequence[ast.AST]) -> str | None:
        for node in reversed(ancestors):
            if isinstance(node, ast.Call):
                name = dotted(node.func) or ""
                if any(part in LOG_CALLS for part in name.split(".")[-1:]) or name.split(".")[0] in LOG_CALLS:
                    return f"inside {name}(...)"
            if isinstance(node, ast.Assert):
                return "an assertion message"
            if isinstance(node, ast.JoinedStr):
                return "inside an f-string"
            if isinstance(node, ast.stmt):
                break
        return None

    @staticmethod
    def literal_context(ancestors: Sequence[ast.AST]) -> tuple[str, list[str]]:
        """A name for where a literal sits (`Hyperparameters.lr`, `torch.compile(dynamic=)`) and the names
        around it that decide whether it is a systems setting."""
        label, names = "", []
        for node in reversed(ancestors):
            if isinstance(node, ast.keyword) and node.arg and not label:
                label = f"{node.arg}="
                names.append(f"kw:{node.arg}")
            elif isinstance(node, ast.Call):
                func = dotted(node.func)
                if func:
                    names.append(func)
                    label = f"{func}({label})" if label else f"{func}(...)"
                break
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.extend(_tokens(t))
                if not label:
                    label = ", ".join(filter(None, (dotted(t) or _safe_unparse(t) for t in targets)))
                break
            elif isinstance(node, ast.stmt):
                break
        return label, names

    # ---- recording

    def record(self, change: str, kind: str, why: str, scopes: Sequence[_Scope], old: Any, new: Any,
               label: str = "", weight: float | None = None, nature: str = "",
               statements: tuple[tuple[str, ...], tuple[str, ...]] | None = None) -> None:
        nodes_old = old if isinstance(old, (list, tuple)) else ([old] if old is not None else [])
        nodes_new = new if isinstance(new, (list, tuple)) else ([new] if new is not None else [])
        types = sorted({type(n).__name__ for n in nodes_old}), sorted({type(n).__name__ for n in nodes_new})
        node_text = [" ".join(types[0]) + (" -> " + " ".join(types[1]) if types[1] and types[1] != types[0] else "")
                     if types[0] else " ".join(types[1])]
        scope = self.scope_name(scopes)
        if label:
            scope = f"{scope}.{label}" if scope != "<module>" else label
        self.evidence.append(Evidence(
            file=self.file, line=self.line_of(nodes_new, nodes_old), scope=scope, change=change, kind=kind,
            nodes=node_text, before=self.snippet(nodes_old), after=self.snippet(nodes_new), why=why,
            weight=weight if weight is not None else max(1, _code_lines(nodes_old), _code_lines(nodes_new)),
            statements=statements or (statements_of(nodes_old), statements_of(nodes_new)),
            math=(_math_names(nodes_old), _math_names(nodes_new)), nature=nature))

    def literal_change(self, a: ast.AST, b: ast.AST, scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> None:
        cosmetic = self.in_log_call(ancestors)
        label, names = self.literal_context(ancestors)
        if cosmetic:
            self.record("literal", NEUTRAL, f"text {cosmetic}", scopes, a, b, label)
            return
        if (_is_path(a) or _is_path(b)) and all(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in (a, b)):
            self.record("literal", NEUTRAL, "a file path (where the data or the logs are, not how the run trains)",
                        scopes, a, b, label)
            return
        systems = self.systems_scope(scopes)
        if systems is None:
            hits = [n for n in names if self.is_sys(n)]
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith(SYSTEMS_ENV_PREFIXES):
                hits.append(a.value)
            if hits:
                systems = f"a setting of {', '.join(sorted(set(hits)))}"
        if systems:
            self.record("literal", SYSTEMS, systems, scopes, a, b, label, weight=LITERAL_WEIGHT)
        elif depth := self.sets_depth(a, b, names):
            self.record("literal", ALGORITHMIC, depth, scopes, a, b, label, weight=LITERAL_WEIGHT)
        elif picks := self.picks_tensor(a, b, scopes, ancestors):
            self.record("literal", ALGORITHMIC, picks, scopes, a, b, label, weight=LITERAL_WEIGHT)
        else:
            self.record("literal", HYPERPARAMETER, "literal value", scopes, a, b, label, weight=LITERAL_WEIGHT)

    def picks_tensor(self, a: ast.AST, b: ast.AST, scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> str | None:
        """Why a changed literal is a change of the model's structure: it is an integer or string subscript (the
        index or key itself, not a slice's bound) in the computation of the model or optimizer (`ve[1]` -> `ve[0]`:
        which value embedding, which layer's output a layer reads; `state['mantissa']` -> `state['momentum_buffer']`:
        which state the update uses); None otherwise. Slice bounds (`x[..., :12]`) stay sizes."""
        if not (ancestors and isinstance(ancestors[-1], ast.Subscript) and ancestors[-1].slice is b):
            return None
        if not all(isinstance(n, ast.Constant) and type(n.value) in (int, str) for n in (a, b)):
            return None
        function = next((s.node for s in reversed(scopes)
                         if isinstance(s.node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if function is None or function.name not in COMPUTE_METHODS:
            return None
        model = self.model_scope(scopes, [])
        return f"an index in {model}: which tensor the computation reads" if model else None

    def sets_depth(self, a: ast.AST, b: ast.AST, names: Sequence[str]) -> str | None:
        """Why a changed literal is a change of the model's structure: it is (or is the value of a knob named as)
        the count a module container is built with (`depth_settings`); None otherwise."""
        if id(a) in self._depth_literals or id(b) in self._depth_literals:
            return "the number of modules the model is built of (a module container's range)"
        knobs = sorted({n.removeprefix("kw:").split(".")[-1] for n in names if not n.startswith(("import:", "env:"))}
                       & self._depth_names)
        if knobs:
            return f"sets the model's depth: {', '.join(knobs)} is how many modules a module container is built of"
        return None

    def structural_change(self, change: str, old: Sequence[ast.AST], new: Sequence[ast.AST],
                          scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> None:
        """Judge a changed structure and record it; each place recorded can be judged again without the statements
        that turn out to have moved elsewhere in the change (`Evidence.rejudge`, used by `discount_moved`)."""
        first = len(self.evidence)
        self._judge_structure(change, old, new, scopes, ancestors)
        old, new, scopes, ancestors = list(old), list(new), list(scopes), list(ancestors)
        for e in self.evidence[first:]:
            if e.rejudge is None and (e.statements[0] or e.statements[1]):
                e.rejudge = functools.partial(self._rejudge, e.change, old, new, scopes, ancestors)

    def _rejudge(self, change: str, old: list[ast.AST], new: list[ast.AST], scopes: list[_Scope],
                 ancestors: list[ast.AST], moved_old: Counter[str], moved_new: Counter[str]) -> list[Evidence]:
        """The evidence of a place judged without its moved statements (texts of `statements_of`, old and new side)."""
        pruned_old, pruned_new = _without(old, Counter(moved_old)), _without(new, Counter(moved_new))
        self._keep_alive.extend([*pruned_old, *pruned_new])
        saved, self.evidence = self.evidence, []
        try:
            if pruned_old or pruned_new:
                self._judge_structure(change, pruned_old, pruned_new, scopes, ancestors)
            return self.evidence
        finally:
            self.evidence = saved

    def _judge_structure(self, change: str, old: Sequence[ast.AST], new: Sequence[ast.AST],
                         scopes: Sequence[_Scope], ancestors: Sequence[ast.AST]) -> None:
        old, new = list(old), list(new)
        # A class added or removed whole is judged method by method (an optimizer's step is its algorithm, its
        # bookkeeping and its communication are other places).
        whole = old or new
        if not (old and new) and len(whole) == 1 and len(getattr(whole[0], "body", ())) > 1 and (
                isinstance(whole[0], ast.ClassDef) or isinstance(whole[0], (ast.FunctionDef, ast.AsyncFunctionDef))
                and _code_lines(whole) > SPLIT_LINES and not self.systems_scope([_Scope(whole[0].name, whole[0])])):
            inner = [*scopes, _Scope(whole[0].name, whole[0])]
            for stmt in whole[0].body:
                self.structural_change(change, [stmt] if old else [], [stmt] if new else [], inner, ancestors)
            return
        cosmetic = self.in_log_call(ancestors)
        if cosmetic:
            self.record(change, NEUTRAL, f"logging {cosmetic}", scopes, old, new)
            return
        if all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
               and (dotted(n.value.func) or "").split(".")[-1] in LOG_CALLS for n in [*old, *new]):
            self.record(change, NEUTRAL, "logging calls", scopes, old, new)
            return
        if all(isinstance(n, ast.Pass) for n in [*old, *new]):
            self.record(change, NEUTRAL, "pass statements", scopes, old, new)
            return
        label = self.run_label(old, new, ancestors)
        if label:
            self.record(change, NEUTRAL, f"names the run ({label})", scopes, old, new)
            return
        renamed = self.consistent_rename(old, new)
        if renamed:
            self.record(change, NEUTRAL, "a consistent rename: " + ", ".join(f"{a} -> {b}" for a, b in renamed[:4]),
                        scopes, old, new)
            return
        subclass = self.subclass_swap(old, new)
        if subclass:
            self.record(change, PLUMBING, subclass, scopes, old, new)
            return
        if [*old, *new] and all(isinstance(n, ast.arg) for n in [*old, *new]):
            # A signature's parameters (`Block(model_dim)` -> `Block(dim, max_seq_len)`): what the function does with
            # them is judged where it uses them; the signature itself is plumbing.
            self.record(change, PLUMBING, "a signature's parameters (judged where they are used): "
                        + ", ".join(n.arg for n in [*old, *new])[:80], scopes, old, new)
            return
        share, hits, changed = self.systems_share(old, new, scopes)
        # Imports: systems modules are systems work; any other import just follows the code that uses it.
        if all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in [*old, *new]):
            hits = sorted({t for n in [*old, *new] for t in _tokens(n) if self.is_sys(t)})
            imported = {t for n in [*old, *new] for t in _tokens(n)}
            if imported <= self._imports_old & self._imports_new:
                # `import torch.distributed as dist` dropped where the file imports it anyway (a repeated
                # import, or one moved): the file uses the same modules before and after.
                self.record(change, NEUTRAL, "an import the file has before and after (moved or repeated)", scopes,
                            old, new)
            elif hits:
                self.record(change, SYSTEMS, f"imports {', '.join(_clean(h) for h in hits)}", scopes, old, new)
            else:
                self.record(change, NEUTRAL, "an import", scopes, old, new)
            return
        systems = self.systems_scope(scopes)
        if systems is None:
            for n in [*old, *new]:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = self.systems_scope([_Scope(n.name, n)]) if not self.file_is_systems else None
                    if inner:
                        systems = inner.replace("inside", "adds or removes")
        if systems is None:
            systems = self.systems_guard(old, new, ancestors)
        if systems:
            self.record(change, SYSTEMS, systems, scopes, old, new)
            return
        # Systems work when its names are a good share of what changed, or outnumber the computation's names
        # (an FP8 quantisation is full of `abs` and `clamp`, but it is the precision that changed).
        math_count = sum(1 for t in changed if is_math_token(t) and not t.startswith("op:"))
        strong = sum(1 for t in changed if self.is_sys(t))
        if hits and (share >= SYSTEMS_SHARE or strong > max(1, math_count)):
            # Only dtype, device, `.to(...)` and rank/world_size names: data movement and placement around a
            # computation, weighed as plumbing is, not as a kernel or a collective.
            self.record(change, SYSTEMS, "changes " + ", ".join(_clean(h) for h in hits[:6]), scopes, old, new,
                        nature=PLACEMENT if not strong else "")
            return
        # A knob added or removed: an assignment of a literal value where knobs live, a literal default of a
        # parameter, a literal keyword argument.
        if not (old and new) and all(self.is_knob(n, scopes, ancestors) for n in [*old, *new]):
            # A parameter's default is the knob of that parameter (`rank=0`): named so, it goes with the code that
            # reads the parameter when both come with the change (see `attribute_new_knobs`).
            named = [f"{self._default_names[id(n)]} = {_safe_unparse(n)}" for n in [*old, *new]
                     if id(n) in self._default_names]
            # A keyword argument is the knob of that keyword (`Muon(..., update_smoothing=0.5)`), likewise.
            named += [f"{n.arg} = {_safe_unparse(n.value)}" for n in [*old, *new] if isinstance(n, ast.keyword)]
            statements = ((tuple(named), ()) if old else ((), tuple(named))) if named else None
            self.record(change, HYPERPARAMETER, "a knob " + ("added" if new else "removed"), scopes, old, new,
                        statements=statements)
            return
        if not (old and new) and all(id(n) in self._literal_default_args for n in [*old, *new]):
            self.record(change, NEUTRAL, "a parameter with a literal default (the default is the knob)", scopes, old,
                        new)
            return
        if not (old and new) and all(isinstance(n, ast.stmt) and _is_state_init(n) for n in [*old, *new]) \
                and self.in_function(scopes):
            self.record(change, NEUTRAL, "state set up (an empty container, a counter, a flag)", scopes, old, new)
            return
        # A literal replaced by a reference to a knob (or back).
        if len(old) == len(new) == 1 and _literal_vs_reference(old[0], new[0]):
            self.record(change, HYPERPARAMETER, "a value now read from a knob", scopes, old, new)
            return
        knob = self.knob_scope(scopes)
        if knob and all(_is_arithmetic(n) for n in [*old, *new]):
            self.record(change, HYPERPARAMETER, f"arithmetic of the {knob}", scopes, old, new)
            return
        names = sorted({_clean(t) for t in changed if not t.startswith(("kw:", "op:"))})[:6]
        math = sorted({_clean(t) for t in changed if is_math_token(t) and not t.startswith("op:")})
        operators = sorted({t[3:] for t in changed if t.startswith("op:") and is_math_token(t)})
        model = self.model_scope(scopes, [*old, *new])
        if math:
            self.record(change, ALGORITHMIC, "computation changed: " + ", ".join(math[:6]), scopes, old, new,
                        nature=COMPUTATION)
        elif operators and model and index_arithmetic_only([*old, *new], ancestors):
            self.record(change, PLUMBING, "index and size arithmetic in " + model + " (slicing, padding, grouping: "
                        "bookkeeping)", scopes, old, new)
        elif operators and model:
            self.record(change, ALGORITHMIC, f"arithmetic changed in {model}: " + ", ".join(operators[:4]), scopes,
                        old, new)
        elif model:
            self.record(change, ALGORITHMIC, f"structure of {model} changed" + (": " + ", ".join(names) if names
                                                                                 else ""), scopes, old, new)
        else:
            why = "no computation of its own (control flow, bookkeeping, arithmetic on counters)"
            self.record(change, PLUMBING, why + (": " + ", ".join(names) if names else ""), scopes, old, new)

    def model_scope(self, scopes: Sequence[_Scope], nodes: Sequence[ast.AST]) -> str | None:
        """The model or optimizer code a change sits in or adds (a class of the model, a function computing on
        tensors), by name; None for the training script's plumbing (its loop, schedules, loaders, managers) and for
        a model or optimizer class's bookkeeping: a method of the class other than its computation (`forward`,
        `step`) that computes nothing itself (`load_state_dict`, building parameter groups, buffers per rank)."""
        enclosing = [s.node for s in scopes]
        for node in [*nodes, *reversed(enclosing)]:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                hit = self._computes.get(id(node))
                if hit is None:
                    hit = self._computes[id(node)] = computes(node)
                    self._keep_alive.append(node)
                if hit:
                    return node.name
                if self._bookkeeping_method(node, scopes):
                    return None
        return None

    @staticmethod
    def _bookkeeping_method(node: ast.AST, scopes: Sequence[_Scope]) -> bool:
        """A method (defined directly in a model or optimizer class) that computes nothing and is not the class's
        computation (nor a module's constructor): what changes there is state and parameter bookkeeping."""
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name in COMPUTE_METHODS:
            return False
        owner = next((s.node for s in reversed(scopes) if s.node is not node
                      and isinstance(s.node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if not (isinstance(owner, ast.ClassDef) and is_model_class(owner) and node in owner.body):
            return False
        # A module's constructor is its architecture (which blocks it holds); an optimizer's holds its state.
        return not (node.name == "__init__" and model_base(owner) == "Module")

    # ---- judging a structural change

    def systems_share(self, old: Sequence[ast.AST], new: Sequence[ast.AST],
                      scopes: Sequence[_Scope] = ()) -> tuple[float, list[str], list[str]]:
        """The share of the changed names that are systems names, the systems names, and the names counted.

        Names the changed code binds itself (its locals, parameters, attributes it assigns, its definitions) say
        nothing about what kind of code it is and are left out, so a rewritten optimizer step full of new locals
        is judged by what it calls (`dist.reduce_scatter_tensor`, `.wait`); a name bound to a thread, event,
        stream or future is a systems name wherever it is used. Precision plumbing (`dtype=`, `.to(...)`) counts
        fully where it is what changed, half inside wholly new or removed code."""
        tokens_old = [t for n in old for t in [*_tokens(n), *_operators(n)]]
        tokens_new = [t for n in new for t in [*_tokens(n), *_operators(n)]]
        changed = _multiset_difference(tokens_old, tokens_new) if old and new else tokens_old + tokens_new
        bound, handles = _bindings([*old, *new], self.handle_classes)
        # An attribute set on an imported module (`torch._dynamo.config.compiled_autograd = True`) is that module's
        # setting, not a name the code binds for itself.
        bound = {b for b in bound if not ("." in b and b.split(".")[0] in self._module_names)}
        handles |= self.handles
        function = next((s.node for s in reversed(scopes)
                         if isinstance(s.node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if function is not None:  # a local of the enclosing function bound to a handle elsewhere in it
            if id(function) not in self._function_handles:
                self._function_handles[id(function)] = _bindings([function], self.handle_classes)[1]
            handles |= self._function_handles[id(function)]
        # A parameter of an enclosing function hides a module-level systems name of the same name: `config` in
        # `GPT.__init__(self, config)` is the model's settings, not `import torch._inductor.config as config`.
        bound |= self.shadowed(scopes)
        roots = bound | handles
        counted = [t for t in (self._localize(t, roots, handles) for t in changed) if t is not None and not _glue(t)]
        weak_weight = 1.0 if old and new else 0.5
        weight = 0.0
        hits: set[str] = set()
        for t in counted:
            if self.is_sys(t):
                weight += 1
                hits.add(t)
            elif is_weak_systems_token(t):
                weight += weak_weight
                hits.add(t)
        return weight / max(1, len(counted)), sorted(hits), counted

    def shadowed(self, scopes: Sequence[_Scope]) -> set[str]:
        """The systems names of the file (`kernel_names`: imports from systems modules, kernels) that a parameter of
        an enclosing function hides in its body."""
        params: set[str] = set()
        path: list[str] = []
        for s in scopes:
            path.append(s.name)
            # The scope's function on both sides: the old side's parameters hide the names of the code it drops
            # (`GPT.__init__(self, config)` rewritten as `GPT.__init__(self, vocab_size, ...)`).
            for node in (s.node, self._old_defs.get(tuple(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    a = node.args
                    params.update(x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x)
        return params & set(self.kernel_names)

    def _localize(self, token: str, roots: set[str], handles: set[str]) -> str | None:
        """A changed name as the share counts it: None for a name the code binds itself, the method part of a
        chain on such a name (`x.float` -> `.float`), `handle:...` for a use of a systems handle."""
        if token.startswith("def:"):
            return token if self.is_sys(token) else None
        if token.startswith(("kw:", "env:", "import:", "op:", ".")):
            return token
        if token in ("self", "cls") or token.split(".")[0] in self.renamed:
            return None
        parts = token.split(".")
        for i in range(len(parts), 0, -1):
            root = ".".join(parts[:i])
            root = root[:-2] if root.endswith("()") else root
            if root in roots:
                if root in handles:
                    return "handle:" + token
                rest = parts[i:]
                return "." + ".".join(rest) if rest else None
        return token

    def systems_guard(self, old: Sequence[ast.AST], new: Sequence[ast.AST], ancestors: Sequence[ast.AST]) -> str | None:
        """A change in the header of a statement whose body is systems work (a cast, a compile, a collective) is
        judged by that body: `if isinstance(m, nn.Embedding): m.bfloat16()` -> `(nn.Embedding, nn.Linear)`
        decides what runs in bfloat16."""
        if ancestors and isinstance(ancestors[-1], ast.Call) and all(isinstance(n, ast.keyword) for n in [*old, *new]):
            func = dotted(ancestors[-1].func)
            if func and self.is_sys(func):
                return f"a setting of {func}"
        compound = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)
        same_body = len(old) == len(new) == 1 and type(old[0]) is type(new[0]) and isinstance(old[0], compound) \
            and all(self.shapes.exact(getattr(old[0], f, [])) == self.shapes.exact(getattr(new[0], f, []))
                    for f in ("body", "orelse"))
        if same_body:
            stmt: ast.AST | None = new[0]  # the same body under a changed header
        elif any(isinstance(n, ast.stmt) for n in [*old, *new]):
            return None
        else:
            stmt = next((a for a in reversed(ancestors) if isinstance(a, ast.stmt)), None)
        if not isinstance(stmt, compound):
            return None
        if not stmt.body or len(stmt.body) > 3:
            return None
        names: list[str] = []
        for st in stmt.body:
            found = [t for t in _tokens(st) if self.is_sys(t)]
            if not found:
                return None
            names.extend(found)
        return "decides where systems work runs: " + ", ".join(sorted({_clean(t) for t in names})[:4])

    def subclass_swap(self, old: Sequence[ast.AST], new: Sequence[ast.AST]) -> str | None:
        """Why a reference to a class became a reference to its subclass (or back) that the change defines
        (`nn.Linear` -> `CastedLinear(nn.Linear)`): what differs is the subclass's own code, judged where it is
        defined; None otherwise."""
        if not (len(old) == len(new) == 1 and all(isinstance(n, (ast.Name, ast.Attribute)) for n in [*old, *new])):
            return None
        a, b = dotted(old[0]), dotted(new[0])
        if not a or not b:
            return None
        for sub, base, tree in ((b, a, self.new_tree), (a, b, self.old_tree)):
            bases = _class_bases(tree).get(sub, ())
            if base in bases or base.split(".")[-1] in {x.split(".")[-1] for x in bases}:
                return f"{sub}, a subclass of {base} the code defines: its own code is judged where it is defined"
        return None

    def consistent_rename(self, old: Sequence[ast.AST], new: Sequence[ast.AST]) -> list[tuple[str, str]]:
        """The (old, new) identifier pairs when the change only renames names the code defines, everywhere
        (`rotary_cos -> cos`: the old name is gone from the new file); [] otherwise."""
        if not old or len(old) != len(new):
            return []
        pairs: list[tuple[str, str]] = []
        if not _renamed_identifiers(list(old), list(new), pairs) or not pairs:
            return []
        used_new, bound_new = self._ids_new
        _, bound_old = self._ids_old
        mapping: dict[str, str] = {}
        for a, b in pairs:
            if mapping.setdefault(a, b) != b or a not in bound_old or b not in bound_new or a in used_new:
                return []
        return sorted(mapping.items())

    @staticmethod
    def run_label(old: Sequence[ast.AST], new: Sequence[ast.AST], ancestors: Sequence[ast.AST]) -> str | None:
        """A change to the value of `run_id`, a log path or a tag: it names the run, it does not change it."""
        stmts = [n for n in [*old, *new] if isinstance(n, ast.stmt)]
        if stmts and len(stmts) == len(old) + len(new):
            candidates: list[ast.AST] = stmts
        elif not stmts:
            stmt = next((a for a in reversed(ancestors) if isinstance(a, ast.stmt)), None)
            candidates = [stmt] if stmt is not None else []
        else:
            return None
        names: list[str] = []
        for st in candidates:
            if not isinstance(st, (ast.Assign, ast.AnnAssign)):
                return None
            targets = st.targets if isinstance(st, ast.Assign) else [st.target]
            found = [n for t in targets for n in _target_names(t)]
            if not found or not all(RUN_LABEL.search(n.split(".")[-1]) for n in found):
                return None
            names.extend(found)
        return ", ".join(names) if names else None

    def is_knob(self, node: ast.AST, scopes: Sequence[_Scope], ancestors: Sequence[ast.AST] = ()) -> bool:
        """An assignment of a literal (not state set up inside a function: `idx = 0`, `futures = []`), a
        parameter's literal default (`def __init__(self, ..., head_dim=128)`), a literal keyword argument
        (`GPT(..., head_dim=128)`)."""
        if isinstance(node, ast.keyword):
            return node.arg is not None and is_literal(node.value)
        if ancestors and isinstance(ancestors[-1], ast.arguments) and isinstance(node, ast.expr):
            return is_literal(node)
        if not _assigns_literal(node):
            return False
        return not (self.in_function(scopes) and _is_state_init(node))

    @staticmethod
    def in_function(scopes: Sequence[_Scope]) -> bool:
        inner = next((s.node for s in reversed(scopes) if s.node is not None), None)
        return isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))
