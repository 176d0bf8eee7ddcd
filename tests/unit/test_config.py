"""Config parsing: defaults, INI files, unknown options and bad values."""

import pytest
from oslo_config import cfg

from nuage_ryu import config


def make_conf(tmp_path, text=None, args=()):
    conf = config.register_opts(cfg.ConfigOpts())
    argv = list(args)
    if text is not None:
        path = tmp_path / "nuage.ini"
        path.write_text(text)
        argv += ["--config-file", str(path)]
    conf(args=argv, default_config_files=[])
    return conf


def test_defaults(tmp_path):
    conf = make_conf(tmp_path)
    assert conf.state_dir == config.DEFAULT_STATE_DIR
    assert conf.directory.api_port == 8080
    assert conf.directory.connection == ""
    assert conf.vrs.bridge == "br-int"
    assert conf.vrs.datapath_type == "system"
    assert conf.vrs.agent_socket == "/run/nuage-ryu/agent.sock"


def test_ini_values_and_derived_paths(tmp_path):
    conf = make_conf(
        tmp_path,
        "[DEFAULT]\nstate_dir = /srv/nr\n[directory]\napi_port = 9090\n"
        "[vrs]\nhost_name = h1\ntunnel_ip = 192.0.2.11\ndatapath_type = netdev\n",
    )
    assert conf.state_dir == "/srv/nr"
    assert conf.directory.api_port == 9090
    assert conf.vrs.tunnel_ip == "192.0.2.11"
    assert config.api_token_file(conf) == "/srv/nr/api-token"
    assert config.directory_remote(conf) == "unix:/srv/nr/directory/db.sock"


def test_directory_remote_prefers_explicit_connection(tmp_path):
    conf = make_conf(tmp_path, "[directory]\nconnection = tcp:127.0.0.1:6641,tcp:127.0.0.1:6642\n")
    assert config.directory_remote(conf) == "tcp:127.0.0.1:6641,tcp:127.0.0.1:6642"


def test_cli_state_dir(tmp_path):
    conf = make_conf(tmp_path, args=["--state-dir", "/x/y"])
    assert conf.state_dir == "/x/y"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[vrs]\nbrige = br-int\n", "unknown option 'brige' in section [vrs]"),
        ("[DEFAULT]\nstatedir = /x\n", "unknown option 'statedir' in section [DEFAULT]"),
        ("[vsr]\nbridge = br-int\n", "unknown section [vsr]"),
    ],
)
def test_unknown_options_are_errors(tmp_path, text, message):
    conf = make_conf(tmp_path, text)
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.check_config_files(conf, list(conf.config_file))


def test_bad_value_is_an_error(tmp_path):
    conf = make_conf(tmp_path, "[vrs]\ndatapath_type = kernel\n")
    with pytest.raises(cfg.ConfigFileValueError):
        conf.vrs.datapath_type  # noqa: B018 - oslo.config validates on access


def test_missing_config_file(tmp_path):
    conf = make_conf(tmp_path)
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.check_config_files(conf, [str(tmp_path / "nope.ini")])
