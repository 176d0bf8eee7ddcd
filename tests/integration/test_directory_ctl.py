"""nuage-ctl (the real console script) against a running nuage-ryu-manager."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nuage_ryu.directory.testing import ManagerProcess, free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")
CTL = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")


@pytest.fixture
def ctl(manager):
    def run(*args, expect=0, env=None):
        base = [CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token")]
        proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **(env or {})))
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run


def as_json(proc):
    return json.loads(proc.stdout)


def test_workflow_by_names(ctl):
    ent = as_json(ctl("--json", "enterprise", "create", "acme", "--description", "tenant"))
    assert ent["name"] == "acme"
    dom = as_json(ctl("--json", "domain", "create", "--enterprise", "acme", "prod", "--vni", "700"))
    assert dom["vni"] == 700
    ctl("zone", "create", "--domain", "prod", "web")
    sub = as_json(ctl("--json", "subnet", "create", "--zone", "web", "front", "10.0.1.0/24"))
    assert sub["gateway"] == "10.0.1.1"
    ctl("policygroup", "create", "--domain", "prod", "www")
    vp = as_json(ctl("--json", "vport", "create", "--subnet", "front", "c1", "--host", "node-1",
                     "--policygroup", "www", "--external-id", "ifname=eth0"))
    assert vp["ip"] == "10.0.1.2" and vp["external_ids"] == {"ifname": "eth0"}
    assert len(vp["policygroups"]) == 1
    rule = as_json(ctl("--json", "acl", "create", "--domain", "prod", "--priority", "10",
                       "--source", "pg:www", "--destination", "cidr:0.0.0.0/0", "--protocol", "tcp",
                       "--ports", "443"))
    assert rule["source"]["type"] == "policygroup" and rule["dst_ports"] == "443"

    table = ctl("vport", "list", "--subnet", "front").stdout.splitlines()
    assert table[0].split() == ["NAME", "IP", "MAC", "STATUS", "HOST", "TYPE", "POLICYGROUPS", "ID"]
    assert table[1].split()[0:2] == ["c1", "10.0.1.2"] and len(table) == 2
    assert table[1].split()[6:] == ["www", vp["id"][:8]]  # groups by name, the id short
    # aligned columns: every row starts each column at the same offset
    # (compare at the header's offsets: a random UUID in the ID column may itself contain "c1")
    assert table[1][table[0].index("NAME"):].startswith("c1 ")
    assert table[1][table[0].index("IP"):].startswith("10.0.1.2 ")
    shown = ctl("vport", "show", "c1").stdout
    assert "10.0.1.2" in shown and "down" in shown
    assert as_json(ctl("--json", "vport", "update", "c1", "--host", "node-2"))["host"] == "node-2"
    assert as_json(ctl("--json", "domain", "update", "prod", "--default-action", "allow"))["default_action"] \
        == "allow"
    assert [v["name"] for v in as_json(ctl("--json", "policygroup", "members", "www"))] == ["c1"]
    ctl("policygroup", "remove-member", "www", "c1")
    assert as_json(ctl("--json", "policygroup", "members", "www")) == []
    ctl("policygroup", "add-member", "www", "c1")
    ctl("acl", "list", "--domain", "prod")
    ctl("host", "create", "node-1", "--tunnel-ip", "192.0.2.1")
    assert "node-1" in ctl("host", "list").stdout
    token = as_json(ctl("--json", "token", "create", "--enterprise", "acme", "--name", "ci"))
    assert token["token"].startswith("nrt_")
    # the tenant token works through the environment
    env = {"NUAGE_TOKEN": token["token"]}
    listing = ctl("--json", "enterprise", "list", env=env)
    assert [e["name"] for e in as_json(listing)] == ["acme"]

    # delete with children: API error (1), then cascade
    err = ctl("domain", "delete", "prod", expect=1)
    assert "cascade" in err.stderr and "409" in err.stderr
    ctl("domain", "delete", "prod", "--cascade")
    ctl("enterprise", "delete", "acme", "--cascade")
    ctl("host", "delete", "node-1")


def test_exit_codes(ctl, manager):
    assert ctl("enterprise", "show", "missing", expect=1).stderr.startswith("nuage-ctl: error: no enterprise")
    ctl("enterprise", "frobnicate", expect=2)
    ctl("subnet", "create", "front", "10.0.0.0/24", expect=2)  # no --zone
    ctl("enterprise", "create", "exit-codes")
    assert "nothing to update" in ctl("enterprise", "update", "exit-codes", expect=2).stderr
    ctl("enterprise", "delete", "exit-codes")
    nowhere = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run([CTL, "--url", nowhere, "--token", "t", "enterprise", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and "cannot connect" in proc.stderr
    proc = subprocess.run([CTL, "--url", manager.url, "--token-file", "/nonexistent", "enterprise", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "token file" in proc.stderr
    bad = subprocess.run([CTL, "--url", manager.url, "--token", "wrong", "enterprise", "list"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "401" in bad.stderr


def test_ambiguous_names_are_usage_errors(ctl):
    ctl("enterprise", "create", "e1")
    ctl("enterprise", "create", "e2")
    for ent in ("e1", "e2"):
        ctl("domain", "create", "--enterprise", ent, "same")
    proc = ctl("domain", "show", "same", expect=2)
    assert "--enterprise" in proc.stderr
    assert as_json(ctl("--json", "domain", "show", "same", "--enterprise", "e2"))["name"] == "same"
    for ent in ("e1", "e2"):
        ctl("enterprise", "delete", ent, "--cascade")


def test_unix_socket(manager):
    proc = subprocess.run([CTL, "--socket", manager.api_socket, "--token-file",
                           os.path.join(manager.state_dir, "api-token"), "--json", "host", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and isinstance(json.loads(proc.stdout), list)


# ---------------------------------------------------------------------------
# issue 14: names in tables, references by path and prefix, both ways of every boolean,
# clearing fields, output formats, completion, discovery of a running directory


@pytest.fixture(scope="module")
def tier3(manager):
    """A 3-tier application (enterprise tier3, domain prod) built with nuage-ctl itself."""
    base = [CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token")]

    def ctl(*args):
        proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    ctl("enterprise", "create", "tier3")
    ctl("domain", "create", "--enterprise", "tier3", "prod", "--vni", "7301")
    for i, (zone, subnet) in enumerate((("web", "front"), ("app", "mid"), ("db", "back"))):
        ctl("zone", "create", "--domain", "tier3/prod", zone)
        ctl("subnet", "create", "--zone", f"tier3/prod/{zone}", subnet, f"10.73.{i + 1}.0/24")
        ctl("policygroup", "create", "--domain", "tier3/prod", zone)
        ctl("vport", "create", "--subnet", f"tier3/prod/{zone}/{subnet}", f"{zone}-1", "--policygroup", zone,
            "--host", f"node-{i + 1}")
    ctl("acl", "create", "--domain", "tier3/prod", "--priority", "100", "--name", "web-to-app", "--source",
        "pg:web", "--destination", "pg:app", "--protocol", "tcp", "--ports", "8080")
    ctl("acl", "create", "--domain", "tier3/prod", "--priority", "200", "--name", "app-to-db", "--source",
        "zone:app", "--destination", "subnet:back", "--protocol", "tcp", "--ports", "5432", "--stateless")
    ctl("acl", "create", "--domain", "tier3/prod", "--priority", "300", "--source", "cidr:10.0.0.0/8",
        "--action", "deny")
    yield ctl
    ctl("enterprise", "delete", "tier3", "--cascade")


def test_acl_list_shows_names_not_ids(tier3):
    rules = as_json(tier3("acl", "list", "--domain", "tier3/prod", "-o", "json"))
    short = {r["priority"]: r["id"][:8] for r in rules}
    assert tier3("acl", "list", "--domain", "tier3/prod").stdout == (
        "PRIO  NAME        SOURCE           DESTINATION  PROTO  PORTS  ACTION  STATEFUL  ID\n"
        f"100   web-to-app  pg:web           pg:app       tcp    8080   allow   yes       {short[100]}\n"
        f"200   app-to-db   zone:app         subnet:back  tcp    5432   allow   no        {short[200]}\n"
        f"300   -           cidr:10.0.0.0/8  any          any    -      deny    yes       {short[300]}\n")
    wide = tier3("acl", "list", "--domain", "tier3/prod", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["PRIO", "NAME", "SOURCE", "DESTINATION", "PROTO", "PORTS", "ACTION", "STATEFUL",
                               "DOMAIN", "PKTS/BYTES", "DESCRIPTION", "ID"]
    assert rules[0]["source"]["id"] in wide[1] and rules[0]["id"] in wide[1]  # full ids in wide


def test_vport_show_names_its_groups_and_parents(tier3):
    group = as_json(tier3("policygroup", "show", "tier3/prod/web", "-o", "json"))
    shown = tier3("vport", "show", "tier3/prod/web/front/web-1").stdout
    assert f"policygroups  web ({group['id']})" in shown
    assert "subnet        tier3/prod/web/front (" in shown and "domain        tier3/prod (" in shown
    members = tier3("policygroup", "members", "tier3/prod/web").stdout.splitlines()
    assert members[1].split()[0] == "web-1" and len(members) == 2


def test_stateful_flips_both_ways(tier3):
    assert as_json(tier3("acl", "update", "app-to-db", "--domain", "tier3/prod", "--stateful", "-o", "json"))[
        "stateful"] is True
    assert as_json(tier3("acl", "show", "app-to-db", "--domain", "tier3/prod", "--json"))["stateful"] is True
    assert as_json(tier3("--json", "acl", "update", "tier3/prod/app-to-db", "--stateless"))["stateful"] is False
    assert "  no  " in tier3("acl", "list", "--domain", "tier3/prod").stdout.splitlines()[2]


def test_ports_and_other_fields_are_cleared_with_an_empty_value(tier3):
    rule = as_json(tier3("acl", "update", "tier3/prod/web-to-app", "--ports", "", "-o", "json"))
    assert rule["dst_ports"] is None
    assert as_json(tier3("acl", "update", "tier3/prod/web-to-app", "--ports", "8080-8081", "--json"))[
        "dst_ports"] == "8080-8081"
    vport = as_json(tier3("vport", "update", "tier3/prod/db/back/db-1", "--host", "", "--policygroup", "",
                          "--description", "", "-o", "json"))
    assert (vport["host"], vport["policygroups"], vport["description"]) == ("", [], "")
    tier3("vport", "update", "tier3/prod/db/back/db-1", "--host", "node-3", "--policygroup", "db")
    icmp = as_json(tier3("acl", "update", "tier3/prod/300", "--protocol", "icmp", "--icmp-type", "8", "--json"))
    assert icmp["icmp_type"] == 8
    assert as_json(tier3("acl", "update", "tier3/prod/300", "--icmp-type", "", "--protocol", "any", "--json"))[
        "icmp_type"] is None


def test_objects_by_path_and_id_prefix(tier3, ctl):
    zone = as_json(tier3("zone", "show", "tier3/prod/app", "-o", "json"))
    assert as_json(tier3("zone", "show", "prod/app", "--enterprise", "tier3", "-o", "json"))["id"] == zone["id"]
    assert as_json(tier3("zone", "show", zone["id"][:8], "-o", "json"))["name"] == "app"
    assert as_json(tier3("zone", "show", zone["id"][:8].upper(), "-o", "json"))["name"] == "app"
    vport = as_json(tier3("vport", "show", "tier3/prod/web/front/web-1", "-o", "json"))
    assert as_json(tier3("vport", "show", vport["id"][:6], "-o", "json"))["id"] == vport["id"]
    # a parent part of a path may be a prefix too; a rule may be given by its priority
    assert as_json(tier3("zone", "show", f"{zone['domain'][:8]}/app", "-o", "json"))["id"] == zone["id"]
    assert as_json(tier3("acl", "show", "tier3/prod/200", "-o", "json"))["name"] == "app-to-db"
    # (ambiguous prefixes cannot be forced with random ids: the unit tests list their candidates)
    assert "no zone named 'ffff0000' in domain tier3/prod (nor with that id prefix)" in \
        ctl("zone", "show", "tier3/prod/ffff0000", expect=1).stderr


def test_output_formats_on_every_command(tier3):
    import yaml

    as_list = yaml.safe_load(tier3("-o", "yaml", "subnet", "list", "--domain", "tier3/prod").stdout)
    assert sorted(s["name"] for s in as_list) == ["back", "front", "mid"]
    assert yaml.safe_load(tier3("subnet", "list", "--domain", "tier3/prod", "-o", "yaml").stdout) == as_list
    assert json.loads(tier3("subnet", "list", "--domain", "tier3/prod", "--json").stdout) == as_list
    assert yaml.safe_load(tier3("enterprise", "show", "tier3", "-o", "yaml").stdout)["name"] == "tier3"
    wide = tier3("subnet", "list", "--domain", "tier3/prod", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "ZONE", "DOMAIN", "CIDR", "GATEWAY", "DESCRIPTION", "ID"]
    for line in tier3("vport", "list", "--domain", "tier3/prod").stdout.splitlines():
        assert len(line) <= 120


def test_errors_speak_cli(tier3, ctl):
    err = ctl("domain", "delete", "tier3/prod", expect=1).stderr
    assert "use --cascade" in err and "?cascade" not in err and "prod (" in err
    err = ctl("enterprise", "create", "tier3", expect=1).stderr
    assert "an enterprise named 'tier3' already exists" in err
    err = ctl("acl", "update", "tier3/prod/300", "--ports", "80", expect=1).stderr
    assert "--ports needs --protocol tcp or udp" in err


def test_completion_and_man_page_from_the_console_script(ctl):
    bash = ctl("completion", "bash").stdout
    assert "complete -F _nuage_ctl nuage-ctl" in bash and "--stateless" in bash
    assert ctl("completion", "zsh").stdout.startswith("#compdef nuage-ctl")
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs", "nuage-ctl.1")) as f:
        assert ctl("man").stdout == f.read()


def test_a_closed_stdout_ends_quietly(tier3, manager):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token"),
                               "acl", "list"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_config_context_from_a_state_dir(manager, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NUAGE_CTL_CONFIG": str(tmp_path / "ctl.ini")}
    proc = subprocess.run([CTL, "config", "set", "lab", "--state-dir", manager.state_dir], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "(current)" in proc.stdout, proc.stderr
    proc = subprocess.run([CTL, "-o", "json", "host", "list"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(subprocess.run([CTL, "config", "show", "-o", "json"], env=env, capture_output=True,
                                      text=True, timeout=30).stdout)
    assert shown["using"]["context"] == "lab" and shown["using"]["from"]["token"].startswith("context lab")


def test_discovery_of_a_running_directory_without_env_vars(tmp_path):
    """A directory started with any --state-dir is found by nuage-ctl with no option, env var or config:
    both run in a private mount namespace whose /run/nuage-ryu is this test's own directory."""
    run_dir, state, home = tmp_path / "run", tmp_path / "state", tmp_path / "home"
    for d in (run_dir, home):
        d.mkdir()
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f"mkdir -p /run/nuage-ryu && mount --bind {run_dir} /run/nuage-ryu && "
                               "echo ready && exec sleep 600"], stdout=subprocess.PIPE, text=True)
    mgr = ManagerProcess(str(state))
    try:
        assert holder.stdout.readline().strip() == "ready"
        inside = ["nsenter", "-t", str(holder.pid), "-m", "--"]
        manager_bin = os.path.join(os.path.dirname(sys.executable), "nuage-ryu-manager")
        with open(mgr.log_path, "ab") as log:
            mgr.proc = subprocess.Popen(inside + [manager_bin, "--config-file", mgr.config_file,
                                                  "nuage_ryu.apps.directory_api"],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        pointer = run_dir / "directory.json"
        wait_until(lambda: pointer.exists() or mgr.proc.poll() is not None, 30, what="the directory to publish")
        assert mgr.proc.poll() is None, Path(mgr.log_path).read_text()[-2000:]
        assert json.loads(pointer.read_text())["state_dir"] == str(state)
        env = {"PATH": os.environ["PATH"], "HOME": str(home)}  # no NUAGE_* at all
        proc = subprocess.run(inside + [CTL, "enterprise", "create", "found"], env=env, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        shown = subprocess.run(inside + [CTL, "config", "show"], env=env, capture_output=True, text=True,
                               timeout=30).stdout
        assert "[running directory (/run/nuage-ryu/directory.json)]" in shown
        assert str(state / "api-token") in shown
        listing = subprocess.run(inside + [CTL, "enterprise", "list"], env=env, capture_output=True, text=True,
                                 timeout=30).stdout
        assert listing.splitlines()[1].split()[0] == "found"
    finally:
        mgr.stop()
        holder.kill()
        holder.wait()
    # a clean stop withdraws both files
    assert not (run_dir / "directory.json").exists() and not (state / "directory.json").exists()


def test_ca_file_verifies_an_https_api(tmp_path):
    """--ca-file (or a context's ca-file) checks the API's certificate against a private CA.

    The directory serves plain HTTP (HTTPS sits in front of it); the server here is a real TLS
    server on loopback with a certificate signed by a CA made for the test."""
    import http.server
    import ssl
    import threading

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (str(tmp_path / n) for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
            "-subj", "/CN=nuage-ryu test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
            "-extfile", str(ext))

    class Hosts(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = b'[{"id": "b0000001-0000-4000-8000-000000000001", "name": "tls-host", "tunnel_ip": "", ' \
                   b'"datapath_id": "", "connected": false, "last_seen": null}]'
            # nuage-ctl pages its lists (?limit=...&page_token=...); this stand-in has one page
            self.send_response(200 if self.path.partition("?")[0] == "/api/v1/hosts" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hosts)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NUAGE_CTL_CONFIG": str(tmp_path / "ctl.ini")}
    try:
        ok = subprocess.run([CTL, "--url", url, "--token", "t", "--ca-file", ca, "host", "list"], env=env,
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout.splitlines()[1].startswith("tls-host"), ok.stderr
        refused = subprocess.run([CTL, "--url", url, "--token", "t", "host", "list"], env=env,
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode == 3 and "certificate verify failed" in refused.stderr
        subprocess.run([CTL, "config", "set", "tls", "--url", url, "--ca-file", ca], env=env, check=True,
                       capture_output=True, timeout=30)
        via_context = subprocess.run([CTL, "--token", "t", "host", "list"], env=env, capture_output=True, text=True,
                                     timeout=30)
        assert via_context.returncode == 0, via_context.stderr
    finally:
        server.shutdown()
        server.server_close()
