"""nuage-ctl's generated tools and its client config: completion, man page, contexts, discovery, pipes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import types

import pytest

from nuage_ryu.directory import discovery
from nuage_ryu.directory.ctl import completion, context, manpage
from nuage_ryu.directory.ctl.parser import build_parser
from nuage_ryu.directory.ctl.resolve import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CTL = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")


# -- shell completion --


def bash_complete(script_path: str, *words: str) -> list[str]:
    """COMPREPLY of the generated function for the words typed (the last one is being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source {script_path}\nCOMP_WORDS=({quoted})\nCOMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
               "_nuage_ctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    out = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, check=True).stdout
    return [w for w in out.splitlines() if w]


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("completion") / "nuage-ctl.bash"
    path.write_text(completion.bash_script(build_parser()))
    return str(path)


def test_bash_completes_objects_actions_options_and_choices(bash_script):
    assert "acl" in bash_complete(bash_script, "nuage-ctl", "")
    assert bash_complete(bash_script, "nuage-ctl", "po") == ["policygroup"]
    assert bash_complete(bash_script, "nuage-ctl", "acl", "") == ["create", "list", "show", "update", "delete"]
    assert bash_complete(bash_script, "nuage-ctl", "acl", "update", "rule", "--st") == ["--stateful", "--stateless"]
    # option values are skipped while finding the command, and choices complete
    assert bash_complete(bash_script, "nuage-ctl", "--url", "http://x", "acl", "l") == ["list"]
    assert bash_complete(bash_script, "nuage-ctl", "acl", "list", "-o", "") == ["table", "wide", "json", "yaml"]
    assert bash_complete(bash_script, "nuage-ctl", "-o", "y") == ["yaml"]
    assert bash_complete(bash_script, "nuage-ctl", "acl", "create", "--action", "") == ["allow", "deny"]
    assert bash_complete(bash_script, "nuage-ctl", "completion", "") == ["bash", "zsh"]
    assert "--no-cascade" in bash_complete(bash_script, "nuage-ctl", "domain", "delete", "prod", "--")


def test_bash_completes_file_names_for_file_options(bash_script, tmp_path):
    (tmp_path / "api-token").write_text("x")
    assert bash_complete(bash_script, "nuage-ctl", "--token-file", str(tmp_path / "api-")) == \
        [str(tmp_path / "api-token")]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/install-deps.sh installs it)")
def test_zsh_script_finds_the_command_and_offers_descriptions(tmp_path):
    script = tmp_path / "_nuage-ctl"
    script.write_text(completion.zsh_script(build_parser()))
    subprocess.run(["zsh", "-n", str(script)], check=True)
    # zsh's completion builtins only exist inside the line editor: stand-ins print what they get.
    program = f"""
_describe() {{ print -r -- "$2: ${{(j:|:)${{(@P)4}}}}" }}
compadd() {{ print -r -- "values: ${{@:2}}" }}
_files() {{ print -r -- files }}
source {script} >/dev/null
c() {{ words=("$@"); CURRENT=${{#words}}; PREFIX=${{words[-1]}}; _nuage_ctl }}
c nuage-ctl acl ''
c nuage-ctl --url http://x acl update r --st
c nuage-ctl acl list -o ''
c nuage-ctl --ca-file ''
"""
    out = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == ("commands: create:create an ACL rule|list:list ACL rules (a table; -o wide|json|yaml)|"
                      "show:show one ACL rule|update:change fields of an ACL rule|delete:delete an ACL rule")
    assert out[1].startswith("options: ") and "--stateless:match this direction only" in out[1]
    assert out[2] == "values: table wide json yaml"
    assert out[3] == "files"


def test_completion_command_prints_the_script(capsys):
    from nuage_ryu.directory.ctl import main

    assert main(["completion", "bash"]) == 0
    assert "complete -F _nuage_ctl nuage-ctl" in capsys.readouterr().out
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("#compdef nuage-ctl")


# -- man page --


def test_committed_man_page_is_current():
    with open(os.path.join(ROOT, "docs", "nuage-ctl.1")) as f:
        committed = f.read()
    assert committed == manpage.manpage(build_parser()), \
        "docs/nuage-ctl.1 is stale: regenerate with 'nuage-ctl man > docs/nuage-ctl.1'"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_renders_without_warnings():
    page = manpage.manpage(build_parser())
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou"], input=page, capture_output=True, text=True,
                          check=True)
    assert proc.stderr == ""
    text = proc.stdout
    for needle in ("nuage-ctl acl update", "--stateless", "pg:web", "EXIT STATUS", "FILES", "use-context"):
        assert needle in text.replace("\u2010", "-").replace("\u2212", "-"), needle


# -- contexts and discovery --


def args(**kw):
    base = {"url": None, "socket": None, "token": None, "token_file": None, "ca_file": None, "context": None,
            "config": None}
    return types.SimpleNamespace(**{**base, **kw})


def published(tmp_path, name="state", url="http://127.0.0.1:18080", socket=None, pid=None) -> str:
    state = tmp_path / name
    state.mkdir()
    record = discovery.describe(str(state), url, socket, str(state / "api-token"))
    if pid is not None:
        record["pid"] = pid
    return discovery.publish(record, None)[0]


def test_defaults_without_anything(tmp_path):
    conn = context.resolve_connection(args(), {"HOME": str(tmp_path)}, discovery_paths=[])
    assert (conn.url, conn.socket, conn.token_file) == ("http://127.0.0.1:8080", None, "/var/lib/nuage-ryu/api-token")
    assert conn.sources == {"endpoint": "default", "token": "default"}


def test_a_running_directory_is_found_without_options(tmp_path):
    path = published(tmp_path)
    conn = context.resolve_connection(args(), {"HOME": str(tmp_path)}, discovery_paths=[path])
    assert conn.url == "http://127.0.0.1:18080"
    assert conn.token_file == str(tmp_path / "state" / "api-token")
    assert conn.sources["endpoint"] == conn.sources["token"] == f"running directory ({path})"
    # the same URL given explicitly still uses that directory's token file; another URL does not
    conn = context.resolve_connection(args(url="http://127.0.0.1:18080"), {}, discovery_paths=[path])
    assert conn.token_file == str(tmp_path / "state" / "api-token")
    conn = context.resolve_connection(args(url="http://127.0.0.1:9"), {}, discovery_paths=[path])
    assert conn.token_file == context.DEFAULT_TOKEN_FILE


def test_a_dead_directory_is_ignored(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = published(tmp_path, pid=dead.pid)
    assert discovery.read(path) is None
    conn = context.resolve_connection(args(), {}, discovery_paths=[path])
    assert conn.sources["endpoint"] == "default"


def test_a_socket_is_preferred_to_the_url_of_the_same_directory(tmp_path):
    path = published(tmp_path, socket="/tmp/x/api.sock")
    conn = context.resolve_connection(args(), {}, discovery_paths=[path])
    assert (conn.socket, conn.url, conn.endpoint) == ("/tmp/x/api.sock", None, "unix:/tmp/x/api.sock")


def test_precedence_options_env_context_discovery(tmp_path):
    cfg = tmp_path / "ctl.ini"
    env = {context.CONFIG_ENV: str(cfg)}
    found = [published(tmp_path)]
    ns = types.SimpleNamespace(action="set", name="lab", c_url="http://10.0.0.1:8080", c_socket=None,
                               c_token_file=str(tmp_path / "tok"), c_ca_file=None, c_state_dir=None, use=None,
                               config=None)
    out = io.StringIO()
    context.run_config(ns, out, env, discovery_paths=found)
    assert "context lab saved" in out.getvalue() and "(current)" in out.getvalue()
    assert os.stat(cfg).st_mode & 0o777 == 0o600
    conn = context.resolve_connection(args(), env, discovery_paths=found)
    assert (conn.url, conn.token_file, conn.context) == ("http://10.0.0.1:8080", str(tmp_path / "tok"), "lab")
    assert conn.sources["endpoint"].startswith("context lab")
    conn = context.resolve_connection(args(), {**env, "NUAGE_URL": "http://env:1", "NUAGE_TOKEN": "t"},
                                      discovery_paths=found)
    assert (conn.url, conn.token, conn.token_file) == ("http://env:1", "t", None)
    conn = context.resolve_connection(args(socket="/s", token_file="/f"), {**env, "NUAGE_URL": "http://env:1"},
                                      discovery_paths=found)
    assert (conn.socket, conn.url, conn.token_file) == ("/s", None, "/f")
    with pytest.raises(UsageError, match="no context 'nope'.*contexts: lab"):
        context.resolve_connection(args(context="nope"), env, discovery_paths=found)


def test_config_set_from_a_state_dir_use_show_and_delete(tmp_path):
    cfg = tmp_path / "ctl.ini"
    env = {context.CONFIG_ENV: str(cfg)}
    published(tmp_path, "lab", url="http://127.0.0.1:18081", socket=str(tmp_path / "lab" / "api.sock"))

    def cmd(action, **kw):
        base = {"action": action, "name": None, "c_url": None, "c_socket": None, "c_token_file": None,
                "c_ca_file": None, "c_state_dir": None, "use": None, "config": None, "context": None,
                "url": None, "socket": None, "token": None, "token_file": None, "ca_file": None, "output": None}
        out = io.StringIO()
        context.run_config(types.SimpleNamespace(**{**base, **kw}), out, env, discovery_paths=[])
        return out.getvalue()

    cmd("set", name="one", c_url="http://a:1")
    cmd("set", name="lab", c_state_dir=str(tmp_path / "lab"))
    ini = context.ConfigFile(str(cfg))
    assert ini.current == "one"
    assert ini.contexts()["lab"] == {"url": "http://127.0.0.1:18081", "socket": str(tmp_path / "lab" / "api.sock"),
                                     "token-file": str(tmp_path / "lab" / "api-token")}
    cmd("use-context", name="lab")
    shown = json.loads(cmd("show", output="json"))
    assert shown["current_context"] == "lab" and shown["using"]["endpoint"] == f"unix:{tmp_path}/lab/api.sock"
    table = cmd("show")
    assert "endpoint      unix:" in table and "*        lab" in table
    cmd("set", name="lab", c_socket="")  # '' removes the key: the URL is used again
    assert context.ConfigFile(str(cfg)).contexts()["lab"]["url"] == "http://127.0.0.1:18081"
    assert "socket" not in context.ConfigFile(str(cfg)).contexts()["lab"]
    cmd("delete-context", name="lab")
    assert context.ConfigFile(str(cfg)).current is None
    with pytest.raises(UsageError, match="no running directory"):
        cmd("set", name="x", c_state_dir=str(tmp_path))
    with pytest.raises(UsageError, match="nothing to set"):
        cmd("set", name="x")


def test_config_path_follows_env_and_xdg(tmp_path):
    assert context.config_path({context.CONFIG_ENV: "/x/ctl.ini"}) == "/x/ctl.ini"
    assert context.config_path({"XDG_CONFIG_HOME": "/cfg"}) == "/cfg/nuage-ryu/ctl.ini"


def test_discovery_files_are_withdrawn_only_while_they_are_ours(tmp_path):
    pointer = str(tmp_path / "run" / "directory.json")
    record = discovery.describe(str(tmp_path), "http://127.0.0.1:1", None, str(tmp_path / "api-token"))
    paths = discovery.publish(record, pointer)
    assert paths == [str(tmp_path / "directory.json"), pointer]
    assert discovery.read(pointer) == record
    other = {**record, "state_dir": "/elsewhere"}
    discovery.publish(other, pointer)  # another directory took the pointer over
    discovery.withdraw(record, paths)
    assert not os.path.exists(paths[0]) and discovery.read(pointer) == other
    assert discovery.api_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert discovery.api_url("::", 80) == "http://[::1]:80"


# -- a closed stdout --


def run_into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader is already gone, as after '| head' has exited."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)


def test_closed_stdout_ends_quietly():
    proc = run_into_closed_pipe([CTL, "man"])
    assert (proc.returncode, proc.stderr) == (0, "")
    # a closed stdout is not confused with other broken pipes: the usual errors still show
    proc = run_into_closed_pipe([CTL, "--url", "http://127.0.0.1:9", "--token", "t", "host", "list"])
    assert proc.returncode == 3 and "cannot connect" in proc.stderr
