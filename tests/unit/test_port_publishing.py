"""Port publishing input of the plugins: dockerd's portmap and CNI's portMappings -> vport port_mappings."""

from __future__ import annotations

import pytest

from nuage_ryu.lab.dockerd import port_options
from nuage_ryu.plugins import cni, docker


def test_dockerd_portmap_of_docker_run_p_becomes_port_mappings():
    options = port_options([("tcp", 8080, 80), ("udp", 5353, 53)])
    assert options["com.docker.network.portmap"][0] == {"Proto": 6, "IP": "", "Port": 80, "HostIP": "",
                                                        "HostPort": 8080, "HostPortEnd": 8080}
    assert options["com.docker.network.endpoint.exposedports"] == [{"Proto": 6, "Port": 80},
                                                                  {"Proto": 17, "Port": 53}]
    assert docker.port_mappings(options["com.docker.network.portmap"]) == [
        {"protocol": "tcp", "host_port": 8080, "container_port": 80},
        {"protocol": "udp", "host_port": 5353, "container_port": 53}]


def test_one_mapping_per_address_family_is_one_published_port():
    both = [{"Proto": 6, "IP": "", "Port": 80, "HostIP": ip, "HostPort": 8080, "HostPortEnd": 8080}
            for ip in ("0.0.0.0", "::")]
    assert docker.port_mappings(both) == [{"protocol": "tcp", "host_port": 8080, "container_port": 80}]


@pytest.mark.parametrize("binding,match", [
    ({"Proto": 132, "Port": 80, "HostPort": 80}, "only tcp and udp"),
    ({"Proto": 6, "Port": 80, "HostPort": 0}, "give the host port"),
    ({"Proto": 6, "Port": 80, "HostPort": 8000, "HostPortEnd": 8010}, "ranges"),
    ({"Proto": 6, "Port": 80, "HostPort": 8080, "HostIP": "127.0.0.1"}, "leave out the host IP"),
])
def test_docker_bindings_the_driver_cannot_publish_are_refused(binding, match):
    with pytest.raises(docker.PluginError, match=match):
        docker.port_mappings([binding])


def test_no_portmap_publishes_nothing():
    assert docker.port_mappings([]) == []


def test_cni_runtime_config_port_mappings():
    conf = {"runtimeConfig": {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::"},
        {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": ""}]}}
    assert cni.port_mappings_of(conf) == [{"protocol": "tcp", "host_port": 8080, "container_port": 80},
                                          {"protocol": "udp", "host_port": 53, "container_port": 5353}]
    assert cni.port_mappings_of({}) == []


@pytest.mark.parametrize("runtime,match", [
    ({"portMappings": {"hostPort": 1}}, "must be a list"),
    ({"portMappings": [{"hostPort": "80", "containerPort": 80}]}, "integers"),
    ({"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.1"}]}, "hostIP"),
])
def test_cni_bad_port_mappings_are_config_errors(runtime, match):
    with pytest.raises(cni.CniError, match=match) as err:
        cni.port_mappings_of({"runtimeConfig": runtime})
    assert err.value.code == cni.ERR_INVALID_CONFIG
