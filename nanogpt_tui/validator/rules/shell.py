"""run.sh as shell words, not Python: its simple commands, exports, package installs and torchrun launches."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass
class ShellCommand:
    """One simple command of run.sh: its line, its words after assignments and wrappers, and its environment."""

    line: int
    argv: list[str]
    env: dict[str, str]


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
