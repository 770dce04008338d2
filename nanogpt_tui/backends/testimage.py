"""The small test image: Debian bookworm with this package, numpy, scipy and CPU torch, built with no registry.

What a session container needs, minus CUDA: `python3 -m nanogpt_tui`, `submit` on PATH, torch for the smoke
record, git. It is built in three cached steps, each an image tagged by a hash of its inputs, so a step runs again
only when what it is made of changes:

1. base    `debootstrap --variant=minbase` of bookworm (python3 3.11 like our wheels, python3-venv, git,
           ca-certificates), tarred once into the cache folder and `docker import`ed;
2. deps    every wheel the package needs plus `torch==2.13.0` (CPU), fetched on this machine with `pip download`,
           copied into a container of the base and installed offline into /opt/venv, then committed;
3. clis    the pinned agent CLIs (nanogpt_tui/agents/pins.py: Claude Code, Codex), `npm ci`ed into the cache
           folder on this machine, copied in with this machine's `node` binary (Codex's launcher is a Node.js
           script; Claude Code's is a native binary), under /opt/agent-clis, on PATH through /usr/local/bin;
4. final   this package's wheel (`pip wheel --no-deps .`), the `submit` wrapper, the record timeline and a config
           pointing at it, committed the same way.

Wheels are copied into a build container, installed and deleted before the commit, so they never weigh on a
layer, and no build context is sent: the same works against a remote Docker host. Building step 1 needs root
(debootstrap) and Debian's mirror; step 2 PyPI (or pip's configured index); step 3 npm (once, for the cache
folder); step 4 nothing from outside.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nanogpt_tui.agents import pins as agent_pins
from nanogpt_tui.config import repo_root
from nanogpt_tui.errors import UserError
from nanogpt_tui.stack import LABEL_OUTSIDE_CHECK

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")
TORCH_REQUIREMENT = "torch==2.13.0"  # the CPU build; see pyproject.toml's `torch` extra
PYTHON_VERSION = "3.11"  # bookworm's python3, so host-downloaded wheels fit
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "NANOGPT_TUI_DEBIAN_MIRROR"
CACHE_ENV = "NANOGPT_TUI_CACHE"

BASE_REPOSITORY = "nanogpt-tui-test-base"
DEPS_REPOSITORY = "nanogpt-tui-test-deps"
CLIS_REPOSITORY = "nanogpt-tui-test-clis"
REPOSITORY = "nanogpt-tui-test"
# Bumped when the recipe below changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"

PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Shared with the benchmark image (image/Dockerfile installs the same two files).
SUBMIT_WRAPPER_FILE = "image/submit"
IMAGE_CONFIG_FILE = "image/nanogpt-tui.toml"
# Left out of the root filesystem tarball: apt's downloaded packages and lists (tens of MB, never needed).
ROOTFS_EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./usr/share/doc/*",
                   "./usr/share/man/*", "./usr/share/locale/*")


def cache_dir() -> Path:
    """Where root filesystem tarballs and wheels are kept between runs: $NANOGPT_TUI_CACHE or ~/.cache."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nanogpt-tui"
    return root / "test-image"


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _source_files(root: Path) -> list[Path]:
    """The files the package's wheel and the image's extras are made from."""
    files = [p for p in sorted((root / "nanogpt_tui").rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]
    for extra in ("pyproject.toml", "README.md", "human_baselines/records.tsv", SUBMIT_WRAPPER_FILE,
                  IMAGE_CONFIG_FILE):
        if (root / extra).is_file():
            files.append(root / extra)
    return files


def project_requirements(root: Path) -> list[str]:
    """The package's runtime dependencies (pyproject.toml) and the pinned CPU torch."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project.get("dependencies", []), TORCH_REQUIREMENT]


@dataclass
class TestImagePlan:
    """The three images' tags, derived from their inputs."""

    root: Path
    mirror: str
    requirements: list[str]
    base_tag: str
    deps_tag: str
    clis_tag: str
    tag: str

    @property
    def base_ref(self) -> str:
        return f"{BASE_REPOSITORY}:{self.base_tag}"

    @property
    def deps_ref(self) -> str:
        return f"{DEPS_REPOSITORY}:{self.deps_tag}"

    @property
    def clis_ref(self) -> str:
        return f"{CLIS_REPOSITORY}:{self.clis_tag}"

    @property
    def ref(self) -> str:
        return f"{REPOSITORY}:{self.tag}"


def plan(root: Path | None = None) -> TestImagePlan:
    root = Path(root or repo_root())
    if not (root / "pyproject.toml").is_file():
        raise UserError(f"{root} is not a nanogpt-tui source checkout (no pyproject.toml); the test image is built "
                        "from one.")
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    requirements = project_requirements(root)
    base_tag = _digest(RECIPE_VERSION, SUITE, mirror, *PACKAGES, *ROOTFS_EXCLUDES)
    deps_tag = _digest(base_tag, PYTHON_VERSION, *requirements)
    node = host_node()
    clis_tag = _digest(deps_tag, CLIS_RECIPE, agent_pins.lock_digest(), str(node),
                       str(node.stat().st_size) if node else "")
    source = [f"{p.relative_to(root)}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in _source_files(root)]
    tag = _digest(clis_tag, *source)
    return TestImagePlan(root, mirror, requirements, base_tag, deps_tag, clis_tag, tag)


def host_node() -> Path | None:
    """This machine's `node` binary (its real file), copied into the test image for Codex's launcher."""
    found = shutil.which("node")
    return Path(found).resolve() if found else None


@dataclass
class TestImageBuild:
    """What `build_test_image` did: the image, which steps ran, and how long it took."""

    ref: str
    built: list[str] = field(default_factory=list)  # steps that ran: "rootfs", "base", "deps", "final"
    step_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    size_bytes: int = 0


def _run(cmd: list[str], what: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=dict(env) if env else None, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed; install it (`apt-get install {cmd[0]}`) to {what}.") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise UserError(f"Could not {what}: `{' '.join(cmd[:4])} ...` exited {proc.returncode}: {tail}")


def make_rootfs_tarball(plan_: TestImagePlan, progress: Callable[[str], None]) -> Path:
    """The debootstrapped bookworm root filesystem as a tarball in the cache folder (made once)."""
    tarball = cache_dir() / f"rootfs-{SUITE}-{plan_.base_tag}.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed; install it (`apt-get install debootstrap`) to build the test "
                        "image.")
    if os.geteuid() != 0:
        raise UserError("debootstrap must run as root to build the test image's root filesystem; run "
                        "`sudo nanogpt-tui image build-test` once (the result is cached).")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    try:
        target = work / "root"
        progress(f"debootstrap {SUITE} (minbase + {', '.join(PACKAGES)}) from {plan_.mirror}")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target),
              plan_.mirror], "debootstrap the test image's root filesystem")
        partial = work / "rootfs.tar"
        _run(["tar", "-C", str(target), "--numeric-owner", *[f"--exclude={e}" for e in ROOTFS_EXCLUDES],
              "-cf", str(partial), "."], "tar the test image's root filesystem")
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def _tar_folder(folder: Path, arcdir: str, extra: Mapping[str, tuple[bytes, int]] = ()) -> Path:
    """A tar file of `folder` under `arcdir/`, plus in-memory files, for copying into a build container."""
    fd, name = tempfile.mkstemp(prefix="nanogpt-tui-", suffix=".tar")
    os.close(fd)
    with tarfile.open(name, "w") as tar:
        tar.add(str(folder), arcname=arcdir)
        for arcname, (content, mode) in dict(extra).items():
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(content), mode, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return Path(name)


def download_wheels(plan_: TestImagePlan, progress: Callable[[str], None]) -> Path:
    """Every dependency wheel (and CPU torch) for bookworm's Python, downloaded once into the cache folder."""
    dest = cache_dir() / f"wheels-{plan_.deps_tag}"
    if (dest / "requirements.txt").is_file():
        return dest
    partial = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache_dir()))
    try:
        (partial / "requirements.in").write_text("\n".join(plan_.requirements) + "\n")
        progress(f"pip download {len(plan_.requirements)} requirements for Python {PYTHON_VERSION}")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(partial), "--only-binary=:all:",
              "--python-version", PYTHON_VERSION, "-r", str(partial / "requirements.in")],
             "download the test image's wheels (pip needs PyPI or its configured index)")
        os.replace(partial / "requirements.in", partial / "requirements.txt")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(partial, dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def build_package_wheel(root: Path, out_dir: Path) -> Path:
    """This package's wheel, built from a clean copy of its sources (no stale build/ folder, nothing left in the
    checkout)."""
    src = out_dir.parent / "src"
    for path in _source_files(root):
        dest = src / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir), str(src)],
         "build the nanogpt-tui wheel", cwd=src)
    wheels = sorted(out_dir.glob("nanogpt_tui-*.whl"))
    if not wheels:
        raise UserError(f"pip wheel left no nanogpt_tui wheel in {out_dir}; build it by hand to see why.")
    return wheels[-1]


# Bumped when the clis step below changes in a way its hashed inputs do not show.
CLIS_RECIPE = "2"
# Codex runs its commands in a login shell (`bash -lc`), and Debian's /etc/profile resets PATH: the training venv
# (torchrun) comes back through profile.d.
PROFILE_VENV = 'case ":$PATH:" in *:/opt/venv/bin:*) ;; *) PATH="/opt/venv/bin:$PATH" ;; esac; export PATH'
CLI_ENV_CHANGES = tuple(f"ENV {k}={v}" for k, v in agent_pins.CLAUDE_QUIET_ENV.items())


def _build_clis(backend, plan_: TestImagePlan, say: Callable[[str], None]) -> None:
    """The deps image plus the pinned agent CLIs from the host's cache folder and the host's node binary."""
    node = host_node()
    if node is None:
        raise UserError("node is not installed; install Node.js (`apt-get install nodejs npm`) to put the agent "
                        "CLIs into the test image (Codex's launcher runs on it).")
    try:
        folder = agent_pins.install_on_host(progress=say)
    except RuntimeError as err:
        raise UserError(str(err)) from None
    links = " ".join(f"ln -sf {agent_pins.IMAGE_PREFIX}/node_modules/{pin.package}/{pin.bin_path} "
                     f"/usr/local/bin/{pin.executable};" for pin in agent_pins.pins().values())
    archive = _tar_folder(folder, "agent-clis", {"node": (node.read_bytes(), 0o755)})
    try:
        say(f"installing {agent_pins.label_value()} and node into {plan_.clis_ref}")
        backend.run_and_commit(
            plan_.deps_ref,
            ["/bin/sh", "-c", "set -e; install -m 755 /tmp/node /usr/local/bin/node; rm /tmp/node; "
             f"rm -rf {agent_pins.IMAGE_PREFIX}; mv /tmp/agent-clis {agent_pins.IMAGE_PREFIX}; "
             f"chown -R 0:0 {agent_pins.IMAGE_PREFIX}; chmod -R a+rX {agent_pins.IMAGE_PREFIX}; {links} "
             f"groupadd --gid {agent_pins.AGENT_GID} {agent_pins.AGENT_USER}; "
             f"useradd --uid {agent_pins.AGENT_UID} --gid {agent_pins.AGENT_GID} --no-create-home "
             f"--home-dir /workspace/home --shell /bin/bash {agent_pins.AGENT_USER}; "
             f"echo '{PROFILE_VENV}' > /etc/profile.d/nanogpt-tui-venv.sh; "
             "node --version; claude --version; codex --version"],
            CLIS_REPOSITORY, plan_.clis_tag, archives=[("/tmp", archive)],
            changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", "ENV PIP_NO_INDEX=1", *CLI_ENV_CHANGES,
                     'CMD ["/bin/bash"]'])
    finally:
        archive.unlink(missing_ok=True)


def prune_stale(backend, plan_: TestImagePlan) -> None:
    """Drop the images and cached files of earlier inputs (an edited pyproject.toml leaves a 1.4 GB deps image)."""
    backend.remove_images(REPOSITORY, keep=[plan_.ref])
    backend.remove_images(CLIS_REPOSITORY, keep=[plan_.clis_ref])
    backend.remove_images(DEPS_REPOSITORY, keep=[plan_.deps_ref])
    backend.remove_images(BASE_REPOSITORY, keep=[plan_.base_ref])
    keep = {f"rootfs-{SUITE}-{plan_.base_tag}.tar", f"wheels-{plan_.deps_tag}"}
    for path in cache_dir().glob("*"):
        if path.name in keep or not path.name.startswith(("rootfs-", "wheels-")):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def build_test_image(backend, *, root: Path | None = None, force: bool = False,
                     progress: Callable[[str], None] | None = None, prune: bool = True) -> TestImageBuild:
    """Build (or find) the test image on `backend` (a `DockerBackend`) and say what it took."""
    say = progress or (lambda _line: None)
    p = plan(root)
    started = time.monotonic()
    result = TestImageBuild(ref=p.ref)

    def timed(step: str, fn: Callable[[], object]) -> None:
        t0 = time.monotonic()
        fn()
        result.built.append(step)
        result.step_seconds[step] = round(time.monotonic() - t0, 1)

    if force or not backend.has_image(p.ref):
        if force or not backend.has_image(p.deps_ref):
            if force or not backend.has_image(p.base_ref):
                tarball_cached = (cache_dir() / f"rootfs-{SUITE}-{p.base_tag}.tar").is_file()
                holder: dict[str, Path] = {}
                if tarball_cached and not force:
                    holder["tar"] = make_rootfs_tarball(p, say)
                else:
                    if force:
                        (cache_dir() / f"rootfs-{SUITE}-{p.base_tag}.tar").unlink(missing_ok=True)
                    timed("rootfs", lambda: holder.__setitem__("tar", make_rootfs_tarball(p, say)))
                say(f"docker import {p.base_ref}")
                timed("base", lambda: backend.import_image(
                    holder["tar"], BASE_REPOSITORY, p.base_tag,
                    changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']))

            def deps() -> None:
                wheels = download_wheels(p, say)
                archive = _tar_folder(wheels, "wheels")
                try:
                    say(f"installing {len(list(wheels.glob('*.whl')))} wheels offline into /opt/venv ({p.deps_ref})")
                    backend.run_and_commit(
                        p.base_ref,
                        ["/bin/sh", "-c", "set -e; python3 -m venv /opt/venv; "
                         "/opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels "
                         "-r /tmp/wheels/requirements.txt; rm -rf /tmp/wheels"],
                        DEPS_REPOSITORY, p.deps_tag, archives=[("/tmp", archive)],
                        changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", "ENV PIP_NO_INDEX=1",
                                 'CMD ["/bin/bash"]'])
                finally:
                    archive.unlink(missing_ok=True)

            timed("deps", deps)

        if force or not backend.has_image(p.clis_ref):
            timed("clis", lambda: _build_clis(backend, p, say))

        def final() -> None:
            work = Path(tempfile.mkdtemp(prefix="nanogpt-tui-pkg-"))
            try:
                wheel = build_package_wheel(p.root, work / "pkg")
                records = p.root / "human_baselines" / "records.tsv"
                extra = {"pkg/submit": ((p.root / SUBMIT_WRAPPER_FILE).read_bytes(), 0o755),
                         "pkg/nanogpt-tui.toml": ((p.root / IMAGE_CONFIG_FILE).read_bytes(), 0o644)}
                if records.is_file():
                    extra["pkg/records.tsv"] = (records.read_bytes(), 0o644)
                archive = _tar_folder(work / "pkg", "pkg", extra)
                try:
                    say(f"installing {wheel.name} and `submit` ({p.ref})")
                    backend.run_and_commit(
                        p.clis_ref,
                        ["/bin/sh", "-c", "set -e; "
                         f"/opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/pkg/{wheel.name}; "
                         "install -m 755 /tmp/pkg/submit /usr/local/bin/submit; "
                         "mkdir -p /opt/nanogpt-tui/human_baselines; "
                         "cp /tmp/pkg/nanogpt-tui.toml /opt/nanogpt-tui/; "
                         "if [ -f /tmp/pkg/records.tsv ]; then "
                         "cp /tmp/pkg/records.tsv /opt/nanogpt-tui/human_baselines/; fi; "
                         "rm -rf /tmp/pkg"],
                        REPOSITORY, p.tag, archives=[("/tmp", archive)],
                        changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", "ENV PYTHONUNBUFFERED=1",
                                 "ENV NANOGPT_TUI_CONFIG=/opt/nanogpt-tui/nanogpt-tui.toml",
                                 *CLI_ENV_CHANGES, f"LABEL {LABEL_OUTSIDE_CHECK}=1",
                                 f"LABEL {agent_pins.IMAGE_LABEL}={agent_pins.label_value()}",
                                 "WORKDIR /workspace", 'CMD ["/bin/bash"]'])
                finally:
                    archive.unlink(missing_ok=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)

        timed("final", final)
        if prune:
            prune_stale(backend, p)
    result.seconds = round(time.monotonic() - started, 1)
    result.size_bytes = backend.image_size(p.ref)
    return result
