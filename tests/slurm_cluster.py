"""A real single-node SLURM (slurmctld + slurmd + munge) started by the tests, as root, without
systemd or accounting; one node with this machine's CPUs and a fake GPU (gres backed by /dev/null)
so that GPU requests are accepted; partitions `cpu` and `gpu` as in profiles/slurm."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from system_packages import Unavailable
from system_packages import ensure_installed as install

ETC = Path("/etc/slurm")
PACKAGES = ["slurm-wlm", "munge"]


def ensure_installed() -> None:
    """Install Debian's SLURM and munge if missing (seconds; needs root and the Debian mirror)."""
    install(["slurmctld", "munged"], PACKAGES)


def _config(work: Path, host: str, cpus: int) -> str:
    return f"""ClusterName=tests
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={work}/jobcomp.txt
GresTypes=gpu
StateSaveLocation={work}/state
SlurmdSpoolDir={work}/spool
SlurmctldPidFile={work}/slurmctld.pid
SlurmdPidFile={work}/slurmd.pid
SlurmctldLogFile={work}/slurmctld.log
SlurmdLogFile={work}/slurmd.log
ReturnToService=2
MinJobAge=3600
SchedulerParameters=defer_batch
NodeName={host} CPUs={cpus} RealMemory=20000 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


def _start_munge() -> bool:
    """Start munged unless it runs; True if this call started it."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return False
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True)
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return True
        time.sleep(0.1)
    raise Unavailable("munged did not start")


def _wait_idle(host: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%t"], capture_output=True, text=True).stdout
        if "idle" in state:
            return
        time.sleep(0.5)
    raise Unavailable(f"the node did not become idle: sinfo says {state!r}")


@contextlib.contextmanager
def single_node_slurm(work: Path):
    """Start the cluster with its files in `work`; stop it and remove /etc/slurm's links after."""
    ensure_installed()
    conf, gres = ETC / "slurm.conf", ETC / "gres.conf"
    if conf.exists() or conf.is_symlink():
        raise Unavailable(f"{conf} exists: not touching a SLURM configuration these tests did not write")
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "slurm.conf").write_text(_config(work, host, os.cpu_count() or 1))
    (work / "gres.conf").write_text(f"NodeName={host} Name=gpu Count=1 File=/dev/null\n")
    ETC.mkdir(parents=True, exist_ok=True)
    conf.symlink_to(work / "slurm.conf")  # the job steps need it there, SLURM_CONF is not enough
    gres.symlink_to(work / "gres.conf")
    started_munge = False
    try:
        started_munge = _start_munge()
        subprocess.run(["slurmctld", "-c"], check=True)  # -c: clear state of earlier runs
        subprocess.run(["slurmd"], check=True)
        _wait_idle(host)
        yield work
    finally:
        # this machine had no SLURM configuration, so every SLURM daemon here is ours
        subprocess.run(["pkill", "-x", "slurmd"], check=False)
        subprocess.run(["pkill", "-x", "slurmctld"], check=False)
        if started_munge:
            subprocess.run(["pkill", "-x", "munged"], check=False)
        time.sleep(1)
        for link in (conf, gres):
            link.unlink(missing_ok=True)


def jobs_in_controller() -> list[dict]:
    """Every job the controller still knows (finished ones for MinJobAge), as key=value fields."""
    lines = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    return [dict(part.split("=", 1) for part in line.split() if "=" in part) for line in lines.splitlines() if line]
