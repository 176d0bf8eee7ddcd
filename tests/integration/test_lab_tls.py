"""The lab's control plane runs over TLS by default: OpenFlow, the directory database and the REST API."""

import pytest

from tests.lab_helpers import lab_with_plane, ns_run

pytestmark = pytest.mark.integration

# An OpenFlow 1.0 HELLO: a plain-TCP switch's first message.
OF_HELLO = "printf '\\001\\000\\000\\010\\000\\000\\000\\001' | timeout 3 nc -q 2 127.0.0.1 6653 | wc -c"


def test_br_int_reaches_its_agent_over_tls_and_plain_tcp_gets_no_openflow():
    with lab_with_plane(1, tag="tls") as (lab, plane):
        host = lab.hosts[0]
        target = host.ovs.run(["ovs-vsctl", "get", "controller", "br-int", "target"]).stdout.strip()
        assert target == '"ssl:127.0.0.1:6653"'
        assert host.ovs.run(["ovs-vsctl", "get", "controller", "br-int", "is_connected"]).stdout.strip() == "true"
        ssl_row = host.ovs.run(["ovs-vsctl", "get-ssl"]).stdout
        assert "host-" in ssl_row or host.host_name in ssl_row
        # The agent's listener speaks TLS only: a plain OpenFlow HELLO gets no HELLO back.
        assert ns_run(host.netns, ["sh", "-c", OF_HELLO]).stdout.strip() == "0"
        # The agent follows the database over ssl: and calls the REST API over https.
        with open(plane.root + f"/agent-{host.name}.ini") as f:
            conf = f.read()
        assert "directory_connection = ssl:" in conf and "directory_api = https://" in conf
        assert plane.client().get("/hosts")[0]["connected"] is True
