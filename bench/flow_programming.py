"""Flow programming benchmark: the sync engine vs ``ovs-ofctl --bundle add-flows``, same flows, same bridge.

    .venv/bin/python bench/flow_programming.py [--flows 100000] [--rounds 3] [--no-docs]

One run: a private ovsdb-server + ovs-vswitchd (own network namespace, rundir in
/tmp) with one netdev bridge; the synthetic flows of
``tests/flow_sync_harness.synthetic_flows`` (classification + delivery flows:
in_port/eth_src/reg6/ipv4_dst matches, set_field + goto/output actions).

Per round:
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
    def __init__(self) -> None:
        self.rundir = tempfile.mkdtemp(prefix="nr-bench-")
        self.netns = f"nrbench-{os.getpid()}"
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/sync.md")
    args = ap.parse_args(argv)
    n = args.flows

    flows = synthetic_flows(n)
    results: dict[str, list[float]] = {k: [] for k in (
        "ofctl", "sync install", "sync resync", "sync same set", "sync remove all")}
    # Engine CPU time per phase (from BridgeSync.stats), to see what dominates.
    parts: dict[str, list[float]] = {k: [] for k in (
        "install prepare", "install diff", "install encode", "resync decode", "resync diff")}
    with Lab() as lab:
        text = os.path.join(lab.rundir, "flows.txt")
        with open(text, "w") as f:
            f.writelines(ofmsg.to_ofctl(fl) + "\n" for fl in flows)
        lab.start_app()
        lab.call(cmd="set_desired", pickle=_pickle(lab, []))  # the canary only: the engine's baseline
        base = flow_count(lab.mgmt)
        for r in range(args.rounds):
            # 1. ovs-ofctl, on the same bridge, same flows.
            t = time.perf_counter()
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "--bundle", "add-flows", lab.mgmt, text],
                           check=True)
            results["ofctl"].append(time.perf_counter() - t)
            assert flow_count(lab.mgmt) == n + base, "ovs-ofctl did not install every flow"
            # The engine reads back what ovs-ofctl installed and finds exactly its own desired set:
            # the text form and the engine's encoding are the same 100k flows.
            reply = lab.call(cmd="set_desired", synthetic=n, reread=True)
            assert reply["sent"][DPID] == [0, 0, 0], f"ofctl and engine flows differ: {reply['sent']}"
            reply = lab.call(cmd="set_desired", pickle=_pickle(lab, []))  # back to the canary only
            assert reply["sent"][DPID][2] == n and flow_count(lab.mgmt) == base
            # 2. the sync engine installs the same flows.
            reply = lab.call(cmd="set_desired", synthetic=n)
            sent = reply["sent"][DPID]
            assert sent == [1, n, 0], sent
            results["sync install"].append(reply["elapsed"])
            st = reply["bridges"][DPID]
            parts["install prepare"].append(st["last_prepare_s"])
            parts["install diff"].append(st["last_diff_s"])
            parts["install encode"].append(st["last_encode_s"])
            assert flow_count(lab.mgmt) == n + base, "sync did not install every flow"
            # 3. no-change reconcile: read back + diff, nothing sent.
            bundles = reply["bridges"][DPID]["bundles"]
            reply = lab.call(cmd="resync")
            assert reply["bridges"][DPID]["bundles"] == bundles, "resync sent a bundle"
            results["sync resync"].append(reply["elapsed"])
            st = reply["bridges"][DPID]
            parts["resync decode"].append(st["last_read_decode_s"])
            parts["resync diff"].append(st["last_diff_s"])
            reply = lab.call(cmd="set_desired", synthetic=n)
            assert reply["sent"][DPID] == [0, 0, 0], reply["sent"]
            results["sync same set"].append(reply["elapsed"])
            # 4. remove everything (back to the canary only).
            reply = lab.call(cmd="set_desired", pickle=_pickle(lab, []))
            assert reply["sent"][DPID] == [1, 0, n], reply["sent"]
            results["sync remove all"].append(reply["elapsed"])
            assert flow_count(lab.mgmt) == base
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in results.items()), flush=True)
        ovs_version = lab.ovs.run(["ovs-vswitchd", "--version"]).stdout.splitlines()[0]
    codec = oskens_codec(flows)

    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["sync install"] / med["ofctl"]
    round_ratios = [s / o for s, o in zip(results["sync install"], results["ofctl"], strict=True)]
    rows = [
        ("`ovs-ofctl -O OpenFlow14 --bundle add-flows`", results["ofctl"]),
        ("sync engine: install, until COMMIT reply", results["sync install"]),
        ("sync engine: no-change reconcile (read back + diff)", results["sync resync"]),
        ("sync engine: same desired set again (diff only)", results["sync same set"]),
        ("sync engine: remove all (one delete-by-cookie per owner of 4 flows)", results["sync remove all"]),
    ]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`.venv/bin/python bench/flow_programming.py --flows {n} --rounds {args.rounds}`; "
        f"{ovs_version}, netdev bridge, Python {platform.python_version()}, {os.cpu_count()} cores. "
        f"{n:,} flows; each figure is one round, median in bold.",
        "",
        "| operation | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |",
        "|---|" + "---|" * (args.rounds + 1),
    ]
    for label, vals in rows:
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f} s" for v in vals)
                     + f" | **{statistics.median(vals):.3f} s** |")
    lines.append("| ratio install / ovs-ofctl, same round | " + " | ".join(f"{r:.2f}x" for r in round_ratios)
                 + f" | **{statistics.median(round_ratios):.2f}x** |")
    lines += [
        "",
        f"**Ratio of the medians, sync install / ovs-ofctl: {ratio:.2f}x** (target <= 2x).",
        "",
        "Engine CPU time inside those figures (BridgeSync.stats; the rest of an install is OVS applying the "
        "bundle and the transport, partly overlapped with encoding; the rest of a resync is OVS dumping, "
        "os-ken receiving and dispatching the replies):",
        "",
        "| phase | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |",
        "|---|" + "---|" * (args.rounds + 1),
    ]
    for label, vals in parts.items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f} s" for v in vals)
                     + f" | {statistics.median(vals):.3f} s |")
    lines += [
        "",
        f"In-process codec cost for the same {n:,} flows (one run each):",
        "",
        "| codec | os-ken generic | ofwire | speed-up |",
        "|---|---|---|---|",
        f"| encode BUNDLE_ADD(FLOW_MOD) | {codec['os-ken encode']:.2f} s | {codec['ofwire encode']:.2f} s "
        f"| {codec['os-ken encode'] / codec['ofwire encode']:.1f}x |",
        f"| parse OFPMP_FLOW replies | {codec['os-ken parse']:.2f} s | {codec['ofwire decode']:.2f} s "
        f"| {codec['os-ken parse'] / codec['ofwire decode']:.1f}x |",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    if not args.no_docs:
        _write_doc(report)
    return 0


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
