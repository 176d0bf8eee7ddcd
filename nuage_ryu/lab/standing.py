"""A lab's control plane that outlives the command that started it (``nuage-lab up --plane``).

``ControlPlane`` (plane.py) starts the directory and the agents as processes of their own
session; a test keeps the ControlPlane object and stops them with it. A user's
``nuage-lab up --plane`` exits right after, so everything a later command needs is recorded
in the lab's state dir instead:

* ``<state>/plane.json``: that the lab has a standing plane, its TLS mode and the nuage-ctl
  context written for it (written before anything starts, so a crashed ``up`` is undone too);
* ``<state>/plane/pids.json``: every pid the plane started, rewritten by ControlPlane as
  each process appears (agents, relays, directory).

``stop_plane`` stops exactly those pids (each checked to still be a process whose command
line names this plane's directory: a recycled pid is left alone), agents first, then the
directory, and removes the plane's files and the nuage-ctl context.

nuage-ctl then needs no option and no environment variable: ``up`` writes a context
``lab-<prefix>`` (API socket + admin token file) into the nuage-ctl client config, which
becomes the current context when the file has none; without any context nuage-ctl also finds
the newest directory of the machine by its published record (docs/nuage-ctl.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time

from nuage_ryu.hostovs.process import pid_alive
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.netns import LabError
from nuage_ryu.lab.plane import PLANE_DIR, STOP_TIMEOUT, ControlPlane

RECORD_FILE = "plane.json"
PIDS_FILE = "pids.json"


def record_path(lab: Lab) -> str:
    """``<state>/plane.json``: present while the lab has a standing control plane."""
    return os.path.join(lab.state_dir, RECORD_FILE)


def read_record(lab: Lab) -> dict | None:
    """The standing plane's record, None when the lab has none."""
    try:
        with open(record_path(lab), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"unreadable plane record {record_path(lab)}: {exc}") from None


def _write_record(lab: Lab, record: dict) -> None:
    tmp = record_path(lab) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, record_path(lab))


def context_name(lab: Lab) -> str:
    """The nuage-ctl context written for this lab's directory."""
    return f"lab-{lab.prefix}"


def start_plane(lab: Lab, tls: bool = True, ctl_config: str | None = None) -> ControlPlane:
    """Start the directory on ``ctl`` and an agent per host, and leave them running.

    ``ctl_config``: the nuage-ctl client config file to add the lab's context to (default: the
    one nuage-ctl reads). On failure everything started is stopped again (LabError)."""
    from nuage_ryu.directory.ctl.context import config_path

    if read_record(lab) is not None:
        raise LabError(f"the lab in {lab.state_dir} already runs a control plane "
                       f"(nuage-lab down --state-dir {lab.state_dir} first)")
    lab.hosts  # noqa: B018 - raises LabError when no lab is up
    record = {"tls": tls, "root": os.path.join(lab.state_dir, PLANE_DIR),
              "context": context_name(lab), "ctl_config": os.path.abspath(ctl_config or config_path()),
              "started": time.time()}
    _write_record(lab, record)
    plane = ControlPlane(lab, tls=tls)
    try:
        plane.start()  # records each pid in <plane>/pids.json as it starts; stops all on failure
        _add_context(record, plane)
    except BaseException:
        stop_plane(lab)
        raise
    return plane


def recorded_plane(lab: Lab) -> ControlPlane | None:
    """A ControlPlane for the paths of the lab's standing plane (it owns no process), or None."""
    record = read_record(lab)
    if record is None:
        return None
    return ControlPlane(lab, tls=record.get("tls", True))


def recorded_pids(lab: Lab) -> dict[str, int]:
    """Name -> pid of every process the standing plane started (``<plane>/pids.json``)."""
    path = os.path.join(lab.state_dir, PLANE_DIR, PIDS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return {str(k): int(v) for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise LabError(f"unreadable pid record {path}: {exc}") from None


def adopt_process(lab: Lab, name: str, pid: int) -> None:
    """Have ``stop_plane`` stop one more process of the plane (e.g. the demo's Docker plugin); its
    command line must name the plane's directory, as the plane's own processes' do."""
    record = read_record(lab)
    if record is None:
        raise LabError(f"the lab in {lab.state_dir} runs no standing control plane")
    record.setdefault("adopted", {})[name] = pid
    _write_record(lab, record)


def is_plane_process(pid: int, plane_root: str) -> bool:
    """Is ``pid`` alive and started by this plane (its command line names the plane's directory)?"""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.join(plane_root, "").encode() in f.read()
    except OSError:
        return False


def _stop_pid(pid: int, timeout: float) -> bool:
    """SIGTERM, SIGKILL after ``timeout``; True once the pid is gone (it is not our child)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
    return not pid_alive(pid)


def stop_plane(lab: Lab, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the standing plane by its recorded pids; remove its files and nuage-ctl context.

    Safe without a plane and safe to repeat. Returns what was stopped or removed."""
    record = read_record(lab)
    root = os.path.join(lab.state_dir, PLANE_DIR)
    removed = []
    pids = {**recorded_pids(lab), **(record or {}).get("adopted", {})}
    # Agents first (they would only log the directory going away), the directory last.
    order = sorted(pids, key=lambda name: (name == "directory", name.startswith("relay-"),
                                           name.startswith("agent-"), name))
    for name in order:
        pid = pids[name]
        if is_plane_process(pid, root):
            if not _stop_pid(pid, timeout):
                raise LabError(f"process {name} ({pid}) survived SIGKILL")
            removed.append(f"process {name} {pid}")
    if record is not None:
        with contextlib.suppress(LabError):
            if _remove_context(record):
                removed.append(f"nuage-ctl context {record['context']} ({record['ctl_config']})")
    if os.path.isdir(root):
        shutil.rmtree(root, ignore_errors=True)
        removed.append(f"dir {root}")
    for path in (record_path(lab), record_path(lab) + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return removed


def _add_context(record: dict, plane: ControlPlane) -> None:
    """``lab-<prefix>``: the API's unix socket (reachable from the root namespace) and the token file."""
    from nuage_ryu.directory.ctl.context import ConfigFile
    from nuage_ryu.directory.ctl.resolve import UsageError

    try:
        cfg = ConfigFile(record["ctl_config"])
        cfg.set(record["context"], {"socket": plane.api_socket, "url": "", "token-file": plane.token_file,
                                    "ca-file": ""})
        if not cfg.current:
            cfg.current = record["context"]
        cfg.save()
    except (UsageError, OSError) as exc:
        raise LabError(f"cannot write the nuage-ctl context: {exc}") from None


def _remove_context(record: dict) -> bool:
    """Drop the lab's context again (True if it was there); other contexts are left as they are."""
    from nuage_ryu.directory.ctl.context import ConfigFile
    from nuage_ryu.directory.ctl.resolve import UsageError

    path = record.get("ctl_config")
    if not path or not os.path.exists(path):
        return False
    try:
        cfg = ConfigFile(path)
        if record["context"] not in cfg.contexts():
            return False
        cfg.delete(record["context"])
        cfg.save()
    except (UsageError, OSError) as exc:
        raise LabError(f"cannot update the nuage-ctl config {path}: {exc}") from None
    return True


def next_steps(lab: Lab, plane: ControlPlane) -> list[str]:
    """What to type next: the lines ``up --plane`` (and ``make demo KEEP=1``) print."""
    from nuage_ryu.directory.ctl.context import ConfigFile
    from nuage_ryu.directory.ctl.resolve import UsageError

    record = read_record(lab) or {}
    sd = f" --state-dir {lab.state_dir}"
    context, config = record.get("context", context_name(lab)), record.get("ctl_config", "-")
    try:
        current = ConfigFile(config).current if config != "-" else None
    except UsageError:
        current = None
    lines = [f"directory: REST API on unix:{plane.api_socket} (admin token {plane.token_file})"
             + (", TLS between the nodes" if plane.tls else "")]
    if current == context:
        lines.append(f"nuage-ctl needs no option: context {context} ({config}) is the current one")
        ctl = "nuage-ctl"
    else:
        lines.append(f"nuage-ctl: context {context} ({config}) points at it; the current context is {current}, "
                     f"so give --context {context} (or: nuage-ctl config use-context {context})")
        ctl = f"nuage-ctl --context {context}"
    return lines + [
        f"  {ctl} host list",
        f"  {ctl} apply -f docs/examples/3tier.yaml",
        f"  nuage-lab attach{sd} h1 web1 --subnet acme/prod/web/front --policygroup web",
        f"  nuage-lab attach{sd} h2 app1 --subnet acme/prod/app/mid --policygroup app",
        f"  nuage-lab exec{sd} web1 -- ping -c1 <app1's ip>",
        f"  nuage-lab status{sd}",
        f"  nuage-lab down{sd}",
    ]
