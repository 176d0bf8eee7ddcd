"""Flow programming benchmark: the sync engine vs ``ovs-ofctl --bundle add-flows``, same flows, same bridge.

    .venv/bin/python bench/flow_programming.py [--sizes 1000,5000,20000,100000] [--rounds 5]
        [--prefix nrbench] [--no-docs]

One run measures every size (``--flows N``: one size) on one lab: a private
ovsdb-server + ovs-vswitchd (own network namespace, rundir in /tmp) with one
netdev bridge; the synthetic flows of
``tests/flow_sync_harness.synthetic_flows`` (classification + delivery flows:
in_port/eth_src/reg6/ipv4_dst matches, set_field + goto/output actions).

Per size, ``--rounds`` rounds; per round, steps 1 and 2-4 back to back, in
alternating order (ofctl first in odd rounds, the engine first in even ones) so
that a drift of the machine's load hits both sides alike:
1. ``ovs-ofctl -O OpenFlow14 --bundle add-flows`` of the flows' text form
   (``ofmsg.to_ofctl``), wall time of the command; then the engine reads the
   bridge back and must find exactly its own desired set (nothing to send:
   both paths installed the same flows); the engine removes them.
2. The sync engine (BridgeSync in an os-ken app under nuage-ryu-manager)
   installs the same flows: time from ``set_desired`` to the bundle's COMMIT
   reply (measured in the app; flows are generated before the clock starts).
3. No-change reconcile: ``resync`` (read back all flows over OpenFlow, decode,
   diff: nothing to send), and ``set_desired`` of the same set again (diff only).
4. Removal of all flows by the engine (one bundle; every owner is gone, so one
   delete-by-cookie per owner: 25,000 messages for 100k flows).

Recorded beside the wall times: the load average before and after each size,
and CPU seconds (``/proc``, bench/cpu_meter.py) of ovs-ofctl, of the engine's
process and of ovs-vswitchd for each install. The target (issue 10) is a
median ratio engine/ovs-ofctl <= 1.5x at every size; a size that fails to run
is reported as missed with the error.

Also, in-process and with the GC paused for both: os-ken's generic serialiser
and parser on the same flows vs ``ofwire`` (to show why ofwire exists). Results go to stdout and, unless
--no-docs, into docs/sync.md between the bench markers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from cpu_meter import process_cpu  # noqa: E402  (bench/, the script's folder)

from nuage_ryu.hostovs.process import OvsInstance  # noqa: E402
from nuage_ryu.vrs import ofmsg, ofwire  # noqa: E402
from tests.flow_sync_harness import SOCKET_ENV, HarnessClient, synthetic_flows  # noqa: E402

BRIDGE = "br-bench"
DPID = "00000000000000be"
APP_FILE = os.path.join(REPO, "tests", "flow_sync_harness.py")
DOC = os.path.join(REPO, "docs", "sync.md")
START, END = "<!-- bench:flow_programming:start -->", "<!-- bench:flow_programming:end -->"


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def flow_count(mgmt: str) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "dump-aggregate", mgmt], check=True,
                         capture_output=True, text=True).stdout
    return int(out.rsplit("flow_count=", 1)[1].split()[0])


def oskens_codec(flows) -> dict:
    """os-ken's generic serialiser/parser vs ofwire on the same flows (in this process)."""
    out = {}
    dp = ofmsg.DATAPATH
    p = ofmsg.parser
    gc.collect()
    gc.disable()  # the engine pauses the GC for bulk work; compare both codecs the same way
    t = time.perf_counter()
    for i, f in enumerate(flows):
        m = p.OFPBundleAddMsg(dp, 1, 3, ofmsg.flow_mod(f), [])
        m.set_xid(i + 1)
        m.serialize()
    out["os-ken encode"] = time.perf_counter() - t
    gc.collect()
    t = time.perf_counter()
    for i, f in enumerate(flows):
        ofwire.encode_bundle_add(f, i + 1, 1, 3)
    out["ofwire encode"] = time.perf_counter() - t
    # A read-back as OVS sends it: multipart replies of ~64 KB.
    replies = []
    chunk = 400
    for i in range(0, len(flows), chunk):
        replies.append(ofwire.encode_flow_stats_reply(flows[i:i + chunk], 7, more=i + chunk < len(flows)))
    gc.collect()
    t = time.perf_counter()
    for raw in replies:
        p.OFPMultipartReply.parser(dp, 5, 19, len(raw), 7, raw)
    out["os-ken parse"] = time.perf_counter() - t
    gc.collect()
    t = time.perf_counter()
    for raw in replies:
        ofwire.decode_flow_stats_reply(raw)
    out["ofwire decode"] = time.perf_counter() - t
    gc.enable()
    return out


class Lab:
    def __init__(self, prefix: str = "nrbench") -> None:
        self.rundir = tempfile.mkdtemp(prefix=f"{prefix}-bench-")
        self.netns = f"{prefix}-{os.getpid()}"
        self.ovs = None
        self.proc = None
        self.client = None

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.ovs = OvsInstance(self.rundir, netns=self.netns).start()
        self.ovs.run(["ip", "link", "set", "lo", "up"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.ovs.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
                       "fail_mode=secure", "protocols=OpenFlow14", f"other-config:datapath-id={DPID}")
        self.mgmt = "unix:" + os.path.join(self.rundir, BRIDGE + ".mgmt")
        return self

    def start_app(self):
        sock = os.path.join(self.rundir, "harness.sock")
        env = dict(os.environ, **{SOCKET_ENV: sock})
        argv = self.ovs.wrap([sys.executable, "-m", "nuage_ryu.cmd.manager", "--state-dir", self.rundir,
                              "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(self.port),
                              APP_FILE])
        self.log = open(os.path.join(self.rundir, "manager.log"), "w")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        wait_until(lambda: os.path.exists(sock), 20, "harness socket")
        self.client = HarnessClient(sock, timeout=300)
        self.ovs.vsctl("set-controller", BRIDGE, f"tcp:127.0.0.1:{self.port}")
        wait_until(lambda: DPID in self.client.call(cmd="status")["bridges"], 30, "bridge to connect")

    def call(self, **req):
        reply = self.client.call(**req)
        if not reply.get("ok"):
            raise RuntimeError(f"harness: {reply}")
        return reply

    def __exit__(self, *exc):
        if self.client:
            self.client.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()
        with contextlib.suppress(Exception):
            self.ovs.stop()
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)
        shutil.rmtree(self.rundir, ignore_errors=True)


SIZES = (1_000, 5_000, 20_000, 100_000)
TARGET = 1.5  # issue 10: sync install <= 1.5x ovs-ofctl --bundle at every size


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure_size(lab, n: int, rounds: int) -> dict:
    """All rounds at one size; the order of ovs-ofctl and the engine alternates from round to round."""
    flows = synthetic_flows(n)
    text = os.path.join(lab.rundir, f"flows-{n}.txt")
    with open(text, "w") as f:
        f.writelines(ofmsg.to_ofctl(fl) + "\n" for fl in flows)
    res: dict[str, list[float]] = {k: [] for k in (
        "ofctl", "sync install", "sync resync", "sync same set", "sync remove all",
        "cpu ofctl: ovs-ofctl", "cpu ofctl: ovs-vswitchd", "cpu sync: app", "cpu sync: ovs-vswitchd",
        "cpu resync: app", "cpu same set: app", "cpu remove all: app",
        "install prepare", "install diff", "install encode", "install first byte",
        "resync decode", "resync diff")}
    base = flow_count(lab.mgmt)
    vswitchd, app = lab.ovs.pids()["ovs-vswitchd"], lab.proc.pid
    load_before = load_average()

    def ofctl_round():
        c0, v0 = children_cpu(), process_cpu(vswitchd)
        t = time.perf_counter()
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "--bundle", "add-flows", lab.mgmt, text], check=True)
        res["ofctl"].append(time.perf_counter() - t)
        res["cpu ofctl: ovs-ofctl"].append(children_cpu() - c0)
        res["cpu ofctl: ovs-vswitchd"].append(process_cpu(vswitchd) - v0)
        assert flow_count(lab.mgmt) == n + base, "ovs-ofctl did not install every flow"
        # The engine reads back what ovs-ofctl installed and finds exactly its own desired set:
        # the text form and the engine's encoding are the same flows.
        reply = lab.call(cmd="set_desired", synthetic=n, reread=True)
        assert reply["sent"][DPID] == [0, 0, 0], f"ofctl and engine flows differ: {reply['sent']}"
        reply = lab.call(cmd="set_desired", pickle=_pickle(lab, []))  # back to the canary only
        assert reply["sent"][DPID][2] == n and flow_count(lab.mgmt) == base

    def sync_round():
        a0, v0 = process_cpu(app), process_cpu(vswitchd)
        reply = lab.call(cmd="set_desired", synthetic=n)
        res["cpu sync: app"].append(process_cpu(app) - a0 - reply["synthetic_cpu_s"])
        res["cpu sync: ovs-vswitchd"].append(process_cpu(vswitchd) - v0)
        sent = reply["sent"][DPID]
        assert sent == [1, n, 0], sent
        res["sync install"].append(reply["elapsed"])
        st = reply["bridges"][DPID]
        res["install prepare"].append(st["last_prepare_s"])
        res["install diff"].append(st["last_diff_s"])
        res["install encode"].append(st["last_encode_s"])
        res["install first byte"].append(st["last_first_byte_s"])
        assert flow_count(lab.mgmt) == n + base, "sync did not install every flow"
        # no-change reconcile: read back + diff, nothing sent.
        bundles = st["bundles"]
        a0 = process_cpu(app)
        reply = lab.call(cmd="resync")
        res["cpu resync: app"].append(process_cpu(app) - a0)
        assert reply["bridges"][DPID]["bundles"] == bundles, "resync sent a bundle"
        res["sync resync"].append(reply["elapsed"])
        st = reply["bridges"][DPID]
        res["resync decode"].append(st["last_read_decode_s"])
        res["resync diff"].append(st["last_diff_s"])
        a0 = process_cpu(app)
        reply = lab.call(cmd="set_desired", synthetic=n)
        res["cpu same set: app"].append(process_cpu(app) - a0 - reply["synthetic_cpu_s"])
        assert reply["sent"][DPID] == [0, 0, 0], reply["sent"]
        res["sync same set"].append(reply["elapsed"])
        # remove everything (back to the canary only).
        a0 = process_cpu(app)
        reply = lab.call(cmd="set_desired", pickle=_pickle(lab, []))
        res["cpu remove all: app"].append(process_cpu(app) - a0)
        assert reply["sent"][DPID] == [1, 0, n], reply["sent"]
        res["sync remove all"].append(reply["elapsed"])
        assert flow_count(lab.mgmt) == base

    for r in range(rounds):
        for step in ((ofctl_round, sync_round) if r % 2 == 0 else (sync_round, ofctl_round)):
            step()
        print(f"{n} flows, round {r + 1}: ofctl {res['ofctl'][-1]:.3f}s, sync install {res['sync install'][-1]:.3f}s "
              f"({res['sync install'][-1] / res['ofctl'][-1]:.2f}x), load {load_average()}", flush=True)
    res["ratio"] = [s / o for s, o in zip(res["sync install"], res["ofctl"], strict=True)]
    return {"n": n, "rounds": rounds, "res": res, "load": (load_before, load_average())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(str(n) for n in SIZES),
                    help="comma-separated flow counts, measured in this order in one run")
    ap.add_argument("--flows", type=int, help="one size only (same as --sizes N)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prefix", default="nrbench", help="name prefix of the netns and run dir the bench creates")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/sync.md")
    args = ap.parse_args(argv)
    sizes = [args.flows] if args.flows else [int(x) for x in args.sizes.split(",") if x]

    measured, missed = [], []
    started = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    with Lab(args.prefix) as lab:
        lab.start_app()
        lab.call(cmd="set_desired", pickle=_pickle(lab, []))  # the canary only: the engine's baseline
        for n in sizes:
            try:
                measured.append(measure_size(lab, n, args.rounds))
            except (RuntimeError, AssertionError, OSError, subprocess.CalledProcessError) as exc:
                missed.append((n, f"{type(exc).__name__}: {exc}"))
                print(f"{n} flows: missed: {exc}", flush=True)
        ovs_version = lab.ovs.run(["ovs-vswitchd", "--version"]).stdout.splitlines()[0]
    codec_n = max(sizes)
    codec = oskens_codec(synthetic_flows(codec_n))
    report = render(measured, missed, codec, codec_n, args, sizes, started, ovs_version)
    print()
    print(report)
    if not args.no_docs:
        _write_doc(report)
    return 0 if not missed else 1


def _fmt(vals, unit="s", digits=3) -> str:
    return " ".join(f"{v:.{digits}f}" for v in vals)


def render(measured, missed, codec, codec_n, args, sizes, started, ovs_version) -> str:
    med = statistics.median
    lines = [
        f"Measured {started} with `.venv/bin/python bench/flow_programming.py --sizes "
        f"{','.join(str(n) for n in sizes)} --rounds {args.rounds}`; {ovs_version}, netdev bridge, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores (shared with other test runs: the load "
        "average, 1/5/15 min, is given before and after each size). Per round, ovs-ofctl and the engine run "
        "back to back on the same bridge, in alternating order; the ratio is taken per round.",
        "",
        f"| flows | load before -> after | ovs-ofctl median | engine install median | ratio per round | "
        f"**median ratio** | target <= {TARGET}x |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in measured:
        r = m["res"]
        ratio = med(r["ratio"])
        lines.append(
            f"| {m['n']:,} | {m['load'][0]} -> {m['load'][1]} | {med(r['ofctl']):.3f} s | "
            f"{med(r['sync install']):.3f} s | {' '.join(f'{x:.2f}x' for x in r['ratio'])} | "
            f"**{ratio:.2f}x** | {'met' if ratio <= TARGET else 'missed'} |")
    for n, why in missed:
        lines.append(f"| {n:,} | | | | | | missed: the run failed ({why}) |")
    lines += [
        "",
        "CPU seconds per install (medians; from /proc, so independent of the wall-clock load): the sync "
        "engine's whole process (os-ken, the harness, the engine; the harness's own generation of the flows "
        "excluded) against ovs-ofctl (parsing the text, encoding, sending), and ovs-vswitchd's for each:",
        "",
        "| flows | ovs-ofctl | ovs-vswitchd (ovs-ofctl install) | engine app | ovs-vswitchd (engine install) |",
        "|---|---|---|---|---|",
    ]
    for m in measured:
        r = m["res"]
        lines.append(f"| {m['n']:,} | {med(r['cpu ofctl: ovs-ofctl']):.3f} s | "
                     f"{med(r['cpu ofctl: ovs-vswitchd']):.3f} s | {med(r['cpu sync: app']):.3f} s | "
                     f"{med(r['cpu sync: ovs-vswitchd']):.3f} s |")
    lines += [
        "",
        "The other engine operations (wall time and the app's CPU seconds, medians) and where an install's "
        "time goes inside the engine (BridgeSync.stats, medians, wall time inside the engine; *first byte*: "
        "from `set_desired` to the first chunk of flow messages handed to os-ken; a streamed install "
        "canonicalises, indexes and encodes in one pass, counted as encode):",
        "",
        "| flows | no-change reconcile (read back + diff) | same set again (diff only) | remove all "
        "(delete by cookie) | install: first byte | prepare | diff | encode | resync: decode | resync: diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in measured:
        r = m["res"]
        lines.append(
            f"| {m['n']:,} | {med(r['sync resync']):.3f} s (CPU {med(r['cpu resync: app']):.3f} s) | "
            f"{med(r['sync same set']):.3f} s (CPU {med(r['cpu same set: app']):.3f} s) | "
            f"{med(r['sync remove all']):.3f} s (CPU {med(r['cpu remove all: app']):.3f} s) | "
            f"{med(r['install first byte']):.3f} s | "
            f"{med(r['install prepare']):.3f} s | {med(r['install diff']):.3f} s | {med(r['install encode']):.3f} s"
            f" | {med(r['resync decode']):.3f} s | {med(r['resync diff']):.3f} s |")
    lines += ["", "Every round (seconds), for the record:", ""]
    for m in measured:
        r = m["res"]
        lines.append(f"- {m['n']:,} flows: ovs-ofctl {_fmt(r['ofctl'])}; engine install {_fmt(r['sync install'])}; "
                     f"reconcile {_fmt(r['sync resync'])}; same set {_fmt(r['sync same set'])}; "
                     f"remove all {_fmt(r['sync remove all'])}")
    lines += [
        "",
        f"In-process codec cost for {codec_n:,} flows, GC paused (one run each):",
        "",
        "| codec | os-ken generic | ofwire | speed-up |",
        "|---|---|---|---|",
        f"| encode BUNDLE_ADD(FLOW_MOD) | {codec['os-ken encode']:.2f} s | {codec['ofwire encode']:.2f} s "
        f"| {codec['os-ken encode'] / codec['ofwire encode']:.1f}x |",
        f"| parse OFPMP_FLOW replies | {codec['os-ken parse']:.2f} s | {codec['ofwire decode']:.2f} s "
        f"| {codec['os-ken parse'] / codec['ofwire decode']:.1f}x |",
    ]
    return "\n".join(lines)


def _pickle(lab, flows) -> str:
    import pickle

    path = os.path.join(lab.rundir, f"flows-{len(flows)}.pickle")
    with open(path, "wb") as f:
        pickle.dump(flows, f)
    return path


def _write_doc(report: str) -> None:
    with open(DOC) as f:
        doc = f.read()
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no bench markers")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(DOC, "w") as f:
        f.write(head + START + "\n" + report + "\n" + END + tail)


if __name__ == "__main__":
    sys.exit(main())
