"""CPU accounting for benches: seconds of CPU each involved process spent in a scenario.

Wall-clock figures on a shared machine measure the neighbours; CPU seconds of the
processes doing the work (user + system time, from ``/proc/PID/stat``) do not
depend on the load. ``CpuMeter`` snapshots a fixed set of named processes and the
bench's own reaped children (``RUSAGE_CHILDREN``: the ``nuage-cni`` execs) before
and after a scenario; ``delta`` is the difference, by process.

Reaped children of a watched process (e.g. an ``ip`` the agent ran) count for it
(``cutime``/``cstime``). Work the kernel does in its own threads (e.g. the
deferred part of a veth or namespace teardown in ``kworker``/``netns`` workqueues)
is attributed to no process: ``machine`` (all CPUs, from ``/proc/stat``) is
reported beside it for scale, but on a shared machine it includes the neighbours.
"""

from __future__ import annotations

import os
import resource

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """utime + stime + cutime + cstime of ``pid`` in seconds (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from every /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def machine_cpu() -> float:
    """CPU seconds of all CPUs, busy (not idle/iowait), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


class CpuMeter:
    """Named processes (name -> pid) plus the bench's own children and itself."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = dict(processes)

    def snapshot(self) -> dict[str, float]:
        """CPU seconds so far of every watched process, ``nuage-cni`` (children) and ``bench``."""
        snap = {name: process_cpu(pid) or 0.0 for name, pid in self.processes.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        snap["bench children (nuage-cni execs)"] = children.ru_utime + children.ru_stime
        snap["bench itself (agent-socket clients)"] = own.ru_utime + own.ru_stime
        snap["machine (all processes, neighbours included)"] = machine_cpu()
        return snap

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float], per: int = 0) -> dict:
        """{process: CPU seconds} spent between the snapshots, and per operation (ms) when ``per``."""
        spent = {name: round(after[name] - before[name], 3) for name in before}
        watched = [n for n in spent if not n.startswith("machine")]
        out: dict = {"cpu_s": spent, "cpu_s_total_watched": round(sum(spent[n] for n in watched), 3)}
        if per:
            out["cpu_ms_per_op"] = {name: round(value * 1000 / per, 2) for name, value in spent.items()}
            out["cpu_ms_per_op_total_watched"] = round(out["cpu_s_total_watched"] * 1000 / per, 2)
        return out
