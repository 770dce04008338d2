"""The pinned agent CLIs (Claude Code, Codex): one npm package.json + lockfile, installed on the build host, baked in.

`nanogpt_tui/agents/clis/package.json` is the one place the versions are written; its `package-lock.json` holds
their integrity hashes, so `npm ci` installs exactly the same bytes on the build host (into the cache folder that
`install_on_host` fills and the test image copies in) and in the benchmark image (image/Dockerfile runs `npm ci` on
the same two files). Nothing is installed at session start and nothing needs network inside a container.
docs/agent-clis.md says how to bump a pin. Standard library only (the provision script runs it before any venv):

    python3 -m nanogpt_tui.agents.pins install   # npm ci into the cache folder when missing; prints the folder
    python3 -m nanogpt_tui.agents.pins show      # the pins as JSON
    python3 -m nanogpt_tui.agents.pins label     # the image label value (image/Dockerfile's AGENT_CLIS_LABEL)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLIS_DIR = Path(__file__).resolve().parent / "clis"
PACKAGE_JSON = CLIS_DIR / "package.json"
LOCKFILE = CLIS_DIR / "package-lock.json"
CACHE_ENV = "NANOGPT_TUI_CACHE"
# Where the npm tree lives inside the images, and the label an image carries naming the pins it holds.
IMAGE_PREFIX = "/opt/agent-clis"
IMAGE_LABEL = "nanogpt-tui.agent-clis"
# The fixed non-root user the agent runs as in a container when the host user is root (Claude Code refuses to skip
# its permission prompts as root); the images create it, the workspace is handed to it before the start.
AGENT_USER = "agent"
AGENT_UID = 1000
AGENT_GID = 1000
# What each CLI is configured with wherever it runs: no self-update, no telemetry or error reports, no
# non-essential traffic (the model API is the only destination a session may reach).
CLAUDE_QUIET_ENV = {"DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_BUG_COMMAND": "1"}


@dataclass(frozen=True)
class CliPin:
    """One agent CLI: its npm package, the pinned version, the executable it puts on PATH and where that
    executable sits in the package's folder."""

    executable: str
    package: str
    version: str
    bin_path: str  # relative to node_modules/<package>/

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


# Executable -> (package, its bin inside the package). The versions come from package.json.
_KNOWN = {"claude": ("@anthropic-ai/claude-code", "bin/claude.exe"), "codex": ("@openai/codex", "bin/codex.js")}


def pins() -> dict[str, CliPin]:
    """The pinned CLIs by executable name, read from package.json."""
    deps = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))["dependencies"]
    return {exe: CliPin(exe, package, deps[package], bin_path) for exe, (package, bin_path) in _KNOWN.items()}


def pin_for(executable: str) -> CliPin | None:
    return pins().get(executable)


def label_value() -> str:
    """What an image built with these pins carries under IMAGE_LABEL (sorted specs, comma-separated)."""
    return ",".join(sorted(p.spec for p in pins().values()))


def specs_in_label(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def lock_digest() -> str:
    h = hashlib.sha256(PACKAGE_JSON.read_bytes())
    h.update(LOCKFILE.read_bytes())
    return h.hexdigest()[:16]


def host_dir() -> Path:
    """The cache folder holding `node_modules/` of the pinned CLIs on this (build) host."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nanogpt-tui"
    return root / "agent-clis" / lock_digest()


def installed_on_host() -> bool:
    folder = host_dir()
    return all((folder / "node_modules" / p.package / p.bin_path).is_file() for p in pins().values()) \
        and (folder / "package-lock.json").is_file()


def host_executable(executable: str) -> Path:
    """The pinned CLI's entry point in the host cache folder."""
    pin = pins()[executable]
    return host_dir() / "node_modules" / pin.package / pin.bin_path


def install_on_host(progress=print) -> Path:
    """`npm ci` the pinned CLIs into the cache folder unless they are there already; returns the folder."""
    folder = host_dir()
    if installed_on_host():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; install Node.js and npm (Debian: `apt-get install nodejs npm`) "
                           "to fetch the pinned agent CLIs.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="install-", dir=folder.parent))
    try:
        shutil.copy2(PACKAGE_JSON, work / "package.json")
        shutil.copy2(LOCKFILE, work / "package-lock.json")
        progress(f"npm ci {label_value()} into {folder}")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"npm ci of the agent CLIs failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not installed_on_host():
        raise RuntimeError(f"npm ci left no CLI entry points under {folder}/node_modules; see its output above.")
    return folder


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "show"
    if command == "install":
        try:
            print(install_on_host(progress=lambda line: print(line, file=sys.stderr)))
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    if command == "label":
        print(label_value())
        return 0
    if command == "show":
        print(json.dumps({p.executable: p.spec for p in pins().values()}, indent=2))
        return 0
    print("usage: python3 -m nanogpt_tui.agents.pins install|show|label", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
