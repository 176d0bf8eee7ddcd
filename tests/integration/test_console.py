"""The web console in a real browser (Debian's headless Chromium, driven by Selenium).

A real directory service serves /ui/ and /api/v1 on loopback; the test logs in, walks the tree,
creates a rule and sees the policy map change, edits a vport's membership, reads a rule's counters
by host, explains a packet with the trace form (the deciding rule, the default-action flag and the datapath
agreement: host h1's flows on a real ovs-vswitchd bridge, traced by the agent's own trace worker), and
checks that a tenant token sees only its enterprise. Screenshots of each view go
to docs/ui/ (shown in docs/ui.md).
"""

import os
import shutil
import socket
import tempfile

import pytest

import nuage_ryu
from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.service import DirectoryService

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER and shutil.which("ovsdb-server")),
                                reason="needs chromium, chromium-driver and ovsdb-server (make test installs them)")
SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "ui")
WAIT = 30  # a loaded 2-core machine runs Chromium slowly


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def directory():
    state = tempfile.mkdtemp(prefix="nr-ui-")
    service = DirectoryService(state_dir=state, api_host="127.0.0.1", api_port=_free_port(), discovery_pointer=None)
    service.start()
    try:
        with open(service.token_file) as f:
            token = f.read().strip()
        yield service, token, DirectoryClient(f"http://127.0.0.1:{service.bound_port}", token)
    finally:
        service.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def tree(directory):
    """Two tenants; acme has a 3-tier domain with rules, vports and counters reported by a host."""
    service, _token, api = directory
    acme = api.post("/enterprises", {"name": "acme"})
    api.post("/enterprises", {"name": "globex"})
    dom = api.post(f"/enterprises/{acme['id']}/domains", {"name": "prod"})
    zone = api.post(f"/domains/{dom['id']}/zones", {"name": "apps"})
    subnet = api.post(f"/zones/{zone['id']}/subnets", {"name": "front", "cidr": "10.1.0.0/24"})
    groups = {n: api.post(f"/domains/{dom['id']}/policygroups", {"name": n}) for n in ("web", "app", "db")}
    rules = [
        api.post(f"/domains/{dom['id']}/acls", {"priority": 100, "name": "web-to-app", "protocol": "tcp",
                                                 "dst_ports": "8080", "action": "allow", "stateful": True,
                                                 "source": {"type": "policygroup", "id": groups["web"]["id"]},
                                                 "destination": {"type": "policygroup", "id": groups["app"]["id"]}}),
        api.post(f"/domains/{dom['id']}/acls", {"priority": 200, "name": "app-to-db", "protocol": "tcp",
                                                 "dst_ports": "5432", "action": "allow", "stateful": True,
                                                 "source": {"type": "policygroup", "id": groups["app"]["id"]},
                                                 "destination": {"type": "policygroup", "id": groups["db"]["id"]}}),
    ]
    vports = [api.post(f"/subnets/{subnet['id']}/vports",
                       {"name": f"web-{i}", "host": "h1", "policygroups": [groups["web"]["id"]]}) for i in range(60)]
    # What an agent does: register its host, then report the absolute counters of its rule flows.
    service.store.register_host("h1", "192.0.2.11", None, agent_version=nuage_ryu.__version__)
    service.store.register_host("h2", "192.0.2.12", None)  # an agent that reported no version
    service.store.set_host_connected("h2", False)
    service.store.report_counters("h1", {rules[0]["id"]: (1234, 98765)}, {})
    return {"acme": acme, "domain": dom, "subnet": subnet, "groups": groups, "rules": rules, "vports": vports}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900"):
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="nr-ui-chrome-")
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition, message)


def _view(driver, name):
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-view") == name,
          f"the {name} view to render")


def _shot(driver, name):
    """The whole page (the window grown to the document's height), for docs/ui.md."""
    os.makedirs(SHOTS, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 40, 600), 2400))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1280, 900)


def _login(driver, base, token):
    driver.get(f"{base}/ui/#/login")
    driver.execute_script("sessionStorage.clear()")
    driver.get("about:blank")  # a real page load next, not just a hash change
    driver.get(f"{base}/ui/#/login")
    _view(driver, "viewLogin")
    box = _wait(driver, lambda d: d.find_elements("id", "token"), "the login form")[0]
    box.clear()
    box.send_keys(token)
    driver.find_element("css selector", "#login button[type=submit]").click()
    _view(driver, "viewEnterprises")


def test_walk_the_tree_create_a_rule_and_see_the_map_change(directory, tree, browser):
    service, token, api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    _login(browser, base, token)
    names = [a.text for a in browser.find_elements("css selector", "main table a")]
    assert names == ["acme", "globex"]
    _shot(browser, "enterprises")
    browser.find_element("link text", "acme").click()
    _view(browser, "viewEnterprise")
    browser.find_element("link text", "prod").click()
    _view(browser, "viewDomain")
    edges = browser.find_elements("css selector", "#policy-map g.rule")
    assert len(edges) == 2
    assert {n.get_attribute("data-node") for n in browser.find_elements("css selector", "#policy-map g.node")} \
        == {"web", "app", "db"}
    _shot(browser, "domain")
    # A new rule through the form: app -> db, deny udp 53.
    form = browser.find_element("id", "new-rule")
    form.find_element("name", "priority").send_keys("300")
    form.find_element("name", "name").send_keys("no-dns")
    from selenium.webdriver.support.ui import Select

    Select(form.find_element("name", "source")).select_by_visible_text("pg:app")
    Select(form.find_element("name", "destination")).select_by_visible_text("cidr…")
    form.find_element("name", "destination_cidr").send_keys("0.0.0.0/0")
    Select(form.find_element("name", "protocol")).select_by_visible_text("udp")
    form.find_element("name", "dst_ports").send_keys("53")
    Select(form.find_element("name", "action")).select_by_visible_text("deny")
    form.find_element("css selector", "button[type=submit]").click()
    _wait(browser, lambda d: len(d.find_elements("css selector", "#policy-map g.rule")) == 3,
          "the map to show the new rule")
    deny = browser.find_elements("css selector", "#policy-map path.edge.deny")
    assert len(deny) == 1
    assert [r for r in api.get(f"/domains/{tree['domain']['id']}/acls") if r["priority"] == 300][0]["action"] == "deny"
    # The API's validation message reaches the user unchanged: a duplicate priority.
    form = browser.find_element("id", "new-rule")
    form.find_element("name", "priority").send_keys("300")
    form.find_element("css selector", "button[type=submit]").click()
    alert = _wait(browser, lambda d: d.find_elements("css selector", "#new-rule + div [role=alert]"),
                  "the API's error to show")
    assert "300" in alert[0].text
    _shot(browser, "domain-after-rule")


def test_a_rule_page_shows_counters_by_host(directory, tree, browser):
    service, token, _api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    _login(browser, base, token)
    browser.get(f"{base}/ui/#/acl/{tree['rules'][0]['id']}")
    _view(browser, "viewAcl")
    rows = [[c.text for c in r.find_elements("css selector", "td, th")]
            for r in browser.find_elements("css selector", "#counters tbody tr")]
    assert ["h1", "1,234", "98,765"] in rows
    _shot(browser, "rule")


def test_long_lists_are_paged_and_searchable_and_membership_can_be_edited(directory, tree, browser):
    service, token, api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    _login(browser, base, token)
    browser.get(f"{base}/ui/#/subnet/{tree['subnet']['id']}")
    _view(browser, "viewSubnet")
    assert len(browser.find_elements("css selector", "main tbody tr")) == 50  # one page of 60
    browser.find_element("css selector", "input.search").send_keys("web-59")
    _wait(browser, lambda d: len(d.find_elements("css selector", "main tbody tr")) == 1, "the search to filter")
    _shot(browser, "subnet")
    vport = tree["vports"][59]
    browser.get(f"{base}/ui/#/vport/{vport['id']}")
    _view(browser, "viewVport")
    boxes = {b.get_attribute("value"): b for b in browser.find_elements("css selector", "#membership input")}
    boxes[tree["groups"]["db"]["id"]].click()
    browser.find_element("css selector", "#membership button").click()
    _wait(browser, lambda d: set(api.get(f"/vports/{vport['id']}")["policygroups"])
          == {tree["groups"]["web"]["id"], tree["groups"]["db"]["id"]}, "the membership to be saved")


def test_the_hosts_view_shows_connected_agent_version_and_vports(directory, tree, browser):
    service, token, _api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    _login(browser, base, token)
    browser.get(f"{base}/ui/#/hosts")
    _view(browser, "viewHosts")
    heads = [th.text for th in browser.find_elements("css selector", "main table thead th")]
    for column in ("name", "connected", "agent version", "vports"):
        assert column in heads, heads
    rows = {}
    for tr in browser.find_elements("css selector", "main table tbody tr"):
        cells = [td.text for td in tr.find_elements("tag name", "td")]
        rows[cells[0]] = dict(zip(heads, cells, strict=True))
    assert rows["h1"]["connected"] == "yes" and rows["h2"]["connected"] == "no"
    assert rows["h1"]["agent version"] == nuage_ryu.__version__ and rows["h2"]["agent version"] == "–"
    assert rows["h1"]["vports"] == str(len(tree["vports"])) and rows["h2"]["vports"] == "0"
    _shot(browser, "hosts")


def test_a_tenant_token_sees_only_its_enterprise(directory, tree, browser):
    service, _token, api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    tenant = api.post("/tokens", {"enterprise": tree["acme"]["id"], "name": "acme-ops"})["token"]
    _login(browser, base, tenant)
    assert [a.text for a in browser.find_elements("css selector", "main table a")] == ["acme"]
    browser.get(f"{base}/ui/#/hosts")
    _view(browser, "viewHosts")
    assert browser.find_elements("css selector", "main [role=alert]") or \
        browser.find_elements("css selector", "main table")
    _shot(browser, "tenant")


@pytest.fixture(scope="module")
def h1_datapath(directory, tree):
    """Host h1 as far as a trace needs it: a real ovs-vswitchd with br-int and two vport ports (web-0 and
    a new app-1), and the agent's trace worker (``nuage_ryu.agent.tracer.Tracer``) answering the
    directory's trace requests for h1 there. ``install()`` puts h1's compiled flows on the bridge."""
    import threading
    from types import SimpleNamespace

    from nuage_ryu.agent.tracer import Tracer
    from nuage_ryu.vrs.compile import compile_host
    from nuage_ryu.vrs.view import from_directory
    from tests.ovs_fixtures import private_ovs
    from tests.unit.test_vrs_ovs_trace import install

    service, _token, api = directory
    app1 = api.post(f"/subnets/{tree['subnet']['id']}/vports",
                    {"name": "app-1", "host": "h1", "policygroups": [tree["groups"]["app"]["id"]]})
    ofports = {tree["vports"][0]["id"]: 1, app1["id"]: 2}
    with private_ovs() as ovs:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                  "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14")
        for port in ofports.values():
            ovs.vsctl("add-port", "br-int", f"trc{port}", "--", "set", "interface", f"trc{port}", "type=internal",
                      f"ofport_request={port}")
        bridge = SimpleNamespace(core=SimpleNamespace(view=None), ovsdb_remote="unix:" + ovs.db_sock,
                                 bridge="br-int")

        def install_flows():
            bridge.core.view = from_directory(service.store.snapshot(), "h1", None, ofports)
            install(ovs, compile_host(bridge.core.view))

        tracer = Tracer(service.store, lambda: {"h1": bridge}, threading.RLock())
        service.store.add_trace_listener(tracer.on_requests)
        try:
            yield SimpleNamespace(install=install_flows, app1=app1)
        finally:
            tracer.stop()


def test_the_trace_form_explains_a_packet_with_the_datapath_check(directory, tree, h1_datapath, browser):
    from selenium.webdriver.support.ui import Select

    service, token, _api = directory
    base = f"http://127.0.0.1:{service.bound_port}"
    h1_datapath.install()
    _login(browser, base, token)
    browser.get(f"{base}/ui/#/vport/{tree['vports'][0]['id']}")  # a vport's page links to the form, prefilled
    _view(browser, "viewVport")
    browser.find_element("id", "trace-from-here").click()
    _view(browser, "viewTrace")
    assert browser.find_element("id", "trace-from").get_attribute("value") == tree["vports"][0]["id"]
    browser.find_element("link text", "Trace").click()
    _wait(browser, lambda d: d.find_element("id", "trace-from").get_attribute("value") == "", "the empty form")

    def trace(src, dst, protocol, port):
        form = browser.find_element("id", "trace-form")
        for name, value in (("from", src), ("to", dst), ("port", port)):
            box = form.find_element("name", name)
            box.clear()
            box.send_keys(value)
        Select(form.find_element("name", "protocol")).select_by_visible_text(protocol)
        old = browser.find_elements("css selector", "#trace-out > *")
        form.find_element("css selector", "button[type=submit]").click()
        return _wait(browser, lambda d: [r for r in d.find_elements("css selector", "#trace-result, #trace-out .error")
                                         if r not in old], "the trace answer")[0]

    result = trace("web-0", "app-1", "tcp", "8080")
    assert (result.get_attribute("data-verdict"), result.get_attribute("data-datapath")) == ("allow", "agree"), \
        result.text
    assert "web-to-app" in browser.find_element("id", "trace-rule").text
    assert browser.find_element("id", "trace-default").text == "no"
    assert "INGRESS_POLICY(22)" in result.text and "[ofproto/trace]" in result.text
    _shot(browser, "trace")
    result = trace("web-0", "app-1", "tcp", "5432")  # no rule: acme's default action (deny)
    assert (result.get_attribute("data-verdict"), result.get_attribute("data-datapath")) == ("deny", "agree"), \
        result.text
    assert browser.find_element("id", "trace-default").text == "yes"
    assert "default action (deny)" in browser.find_element("id", "trace-rule").text
    # Bad input: the API's message, as the API words it.
    alert = trace("web-0", "nobody", "tcp", "80")
    assert alert.get_attribute("role") == "alert" and "nobody" in alert.text


def test_the_console_serves_only_its_own_files(directory):
    import http.client

    service, _token, _api = directory
    conn = http.client.HTTPConnection("127.0.0.1", service.bound_port, timeout=5)
    try:
        for path, status in (("/ui/", 200), ("/ui/app.js", 200), ("/ui/../api-token", 404),
                             ("/ui/%2e%2e/api-token", 404), ("/ui/nope.js", 404)):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == status, (path, resp.status)
            if status == 200:
                assert "default-src 'self'" in resp.getheader("Content-Security-Policy")
            else:
                assert _token.encode() not in body
    finally:
        conn.close()
