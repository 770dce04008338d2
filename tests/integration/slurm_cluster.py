"""A real one-node Slurm cluster for the `slurm` tests: munged, slurmctld and slurmd from Debian's packages, started
as this user with their own configuration, sockets, ports, state and logs in one temporary folder (nothing system-wide
is touched). The node declares GPUs as generic resources backed by device nodes with no driver (no real GPU is needed to
schedule),
and uses proctrack/linuxproc and task/none, so no systemd or cgroups are needed. Clients find it through
$SLURM_CONF.

With `accounting=True` it also runs Slurm's accounting: a private MariaDB server (its own data folder, socket and
loopback port) and slurmdbd, with GPUs counted as a TRES (`AccountingStorageTRES=gres/gpu`), so `sacct` answers
with a job's elapsed time and allocated GPUs."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

NODE = "ngtnode"
PARTITION = "gpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class SlurmCluster:
    def __init__(self, root: Path, *, gpus: int = 4, cpus: int = 8, accounting: bool = False) -> None:
        self.root = Path(root)
        self.gpus, self.cpus, self.accounting = gpus, cpus, accounting
        self.db_port = self.dbd_port = 0
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- set-up ---------------------------------------------------------------------------------------------

    def write_config(self) -> None:
        r = self.root
        for sub in ("munge", "state", "spool", "log", "dev"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        for i in range(self.gpus):
            # Character devices with NVIDIA's numbers (no driver behind them: nothing opens them), so slurmd takes
            # them as GPUs and pins them (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS); plain files where mknod is refused.
            device = r / "dev" / f"nvidia{i}"
            if not device.exists():
                try:
                    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(195, i))
                except PermissionError:
                    device.touch()
        ctld_port, slurmd_port = _free_port(), _free_port()
        if self.accounting:
            self.db_port, self.dbd_port = _free_port(), _free_port()
            # AccountingStoragePass: the munge socket for talking to slurmdbd (AuthInfo covers the rest).
            accounting = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
                          f"AccountingStoragePort={self.dbd_port}\nAccountingStorageTRES=gres/gpu\n"
                          f"AccountingStoragePass={self.munge_socket}\n")
            dbd = r / "slurmdbd.conf"
            dbd.write_text(f"""AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={r / 'slurmdbd.pid'}
LogFile={r / 'log' / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=root
StorageLoc=slurm_acct_db
""")
            os.chmod(dbd, 0o600)
        else:
            accounting = "AccountingStorageType=accounting_storage/none\n"
        self.conf.write_text(f"""ClusterName=ngt
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
MailProg=/bin/true
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
{accounting}MinJobAge=600
KillWait=15
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={self.cpus} RealMemory=2000 Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
        (r / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File={r / 'dev'}/nvidia[0-{self.gpus - 1}]\n")
        key = r / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
            os.chmod(key, 0o400)

    def start(self) -> "SlurmCluster":
        self.write_config()
        r = self.root
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={r / 'munge' / 'munge.key'}", f"--pid-file={r / 'munge' / 'munged.pid'}",
                               f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munge' / 'munge.seed'}"])
        self._wait(lambda: self.munge_socket.exists(), "munged", 20)
        if self.accounting:
            self.start_accounting()
        self.start_slurmctld(clear=True)
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait(self._node_idle, "slurmd (the node idle)", 60)
        return self

    def start_accounting(self) -> None:
        """MariaDB on a loopback port (no grant tables: only this test's slurmdbd talks to it), then slurmdbd,
        then the cluster registered."""
        r = self.root
        data = r / "db" / "data"
        if not data.exists():
            subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                            "--auth-root-authentication-method=normal", "--skip-test-db"], check=True,
                           capture_output=True, timeout=120)
        self._spawn("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={r / 'db' / 'db.sock'}",
                                 f"--port={self.db_port}", "--bind-address=127.0.0.1", "--skip-grant-tables",
                                 "--user=root", f"--pid-file={r / 'db' / 'db.pid'}", "--skip-log-bin",
                                 f"--log-error={r / 'log' / 'mariadbd.log'}"])
        self._wait(lambda: _port_open(self.db_port), "mariadbd", 60)
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait(lambda: _port_open(self.dbd_port), "slurmdbd", 60)
        self.run("sacctmgr", "--immediate", "add", "cluster", "ngt", check=False)
        self._wait(lambda: "ngt" in self.run("sacctmgr", "--noheader", "--parsable2", "list", "cluster",
                                             check=False).stdout.split("|")[0], "the cluster's registration", 30)

    def start_slurmctld(self, clear: bool = False) -> None:
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)] + (["-c"] if clear else []))
        self._wait(self._controller_answers, "slurmctld", 60)

    def stop_slurmctld(self) -> None:
        self._stop("slurmctld")

    def restart_slurmctld(self) -> None:
        self.stop_slurmctld()
        self.start_slurmctld()

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name)

    # --- helpers --------------------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _controller_answers(self) -> bool:
        return self.run("scontrol", "ping", check=False).stdout.find("UP") >= 0

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
        return out.startswith("idle")

    def _wait(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not come up within {timeout_s:g} s: {self.log_tail('slurmctld')} "
                           f"{self.log_tail('slurmd')}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        texts = []
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            if path.exists():
                texts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)


def slurm_installed() -> bool:
    return all(shutil.which(c) for c in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel"))
