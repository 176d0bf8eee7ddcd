"""Where nuage-ctl connects to and with which token: options, environment, contexts, discovery.

Each setting is taken from the first layer that gives it:
  1. command-line options (--url/--socket, --token/--token-file, --ca-file);
  2. environment (NUAGE_URL/NUAGE_SOCKET, NUAGE_TOKEN/NUAGE_TOKEN_FILE, NUAGE_CA_FILE);
  3. the selected context of the client config file (--context, $NUAGE_CONTEXT, or the file's
     current context); the file is $NUAGE_CTL_CONFIG, else $XDG_CONFIG_HOME/nuage-ryu/ctl.ini,
     else ~/.config/nuage-ryu/ctl.ini;
  4. a directory running on this machine (see ``nuage_ryu.directory.discovery``): its API
     address, and its token file when nuage-ctl talks to that API;
  5. defaults: http://127.0.0.1:8080 and /var/lib/nuage-ryu/api-token.
The API address (URL or unix socket) is one setting, and so is the token (token or token file):
a URL given on the command line is never mixed with a socket from a context.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from nuage_ryu.directory import discovery
from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.ctl.resolve import UsageError

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TOKEN_FILE = os.path.join(discovery.DEFAULT_STATE_DIR, "api-token")
CONFIG_ENV = "NUAGE_CTL_CONFIG"
CONTEXT_ENV = "NUAGE_CONTEXT"
KEYS = ("url", "socket", "token-file", "ca-file")
_SETTINGS = "settings"


def config_path(env: Mapping[str, str] = os.environ) -> str:
    """The client config file nuage-ctl reads (it need not exist)."""
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV]
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "nuage-ryu", "ctl.ini")


class ConfigFile:
    """The INI file of named contexts::

        [settings]
        current-context = lab

        [context lab]
        url = http://127.0.0.1:8080
        token-file = /tmp/lab/api-token
    """

    def __init__(self, path: str):
        self.path = path
        self._ini = configparser.ConfigParser(interpolation=None)
        try:
            with open(path) as f:
                self._ini.read_file(f)
        except FileNotFoundError:
            pass
        except (OSError, configparser.Error) as exc:
            raise UsageError(f"cannot read config file {path}: {exc}") from None

    @property
    def current(self) -> str | None:
        return self._ini.get(_SETTINGS, "current-context", fallback=None) or None

    @current.setter
    def current(self, name: str) -> None:
        if not self._ini.has_section(_SETTINGS):
            self._ini.add_section(_SETTINGS)
        self._ini.set(_SETTINGS, "current-context", name)

    def contexts(self) -> dict[str, dict[str, str]]:
        out = {}
        for section in self._ini.sections():
            if section.startswith("context "):
                out[section[len("context "):]] = {k: v for k, v in self._ini.items(section) if v}
        return out

    def get(self, name: str) -> dict[str, str]:
        contexts = self.contexts()
        if name not in contexts:
            known = ", ".join(sorted(contexts)) or "none yet; create one with nuage-ctl config set NAME --url URL"
            raise UsageError(f"no context {name!r} in {self.path} (contexts: {known})")
        return contexts[name]

    def set(self, name: str, values: Mapping[str, str | None]) -> None:
        """Set keys of context ``name`` (created when new); an empty value removes the key."""
        section = f"context {name}"
        if not self._ini.has_section(section):
            self._ini.add_section(section)
        for key, value in values.items():
            if value is None:
                continue
            if value == "":
                self._ini.remove_option(section, key)
            else:
                self._ini.set(section, key, value)

    def delete(self, name: str) -> None:
        self.get(name)
        self._ini.remove_section(f"context {name}")
        if self.current == name:
            self._ini.remove_option(_SETTINGS, "current-context")

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            self._ini.write(f)
        os.replace(tmp, self.path)


@dataclass
class Connection:
    """What the client needs, and where each part came from (for ``config show``)."""

    url: str | None = None
    socket: str | None = None
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    context: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"unix:{self.socket}" if self.socket else (self.url or "")

    def read_token(self) -> str:
        """The bearer token (read from the token file unless given)."""
        if self.token:
            return self.token
        try:
            with open(self.token_file) as f:
                token = f.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read token file {self.token_file} ({self.sources.get('token')}): "
                             f"{exc.strerror}; use --token-file, --token, NUAGE_TOKEN or "
                             f"'nuage-ctl config set --token-file FILE'") from None
        if not token:
            raise UsageError(f"token file {self.token_file} is empty")
        return token

    def client(self, timeout: float) -> DirectoryClient:
        """A DirectoryClient for this connection."""
        url = f"unix:{self.socket}" if self.socket else self.url
        return DirectoryClient(url, token=self.read_token(), timeout=timeout, ca_file=self.ca_file)


def discovered(paths: list[str] | None = None) -> tuple[str, dict] | None:
    """(path, record) of a directory running on this machine, if one published itself."""
    for path in discovery.candidates() if paths is None else paths:
        record = discovery.read(path)
        if record is not None:
            return path, record
    return None


def resolve_connection(args, env: Mapping[str, str] = os.environ,
                       discovery_paths: list[str] | None = None) -> Connection:
    """Combine options, environment, context, discovery and defaults (see the module docstring).

    ``discovery_paths``: where to look for a running directory (default ``discovery.candidates()``).
    """
    conn = Connection()
    ctx: dict[str, str] = {}
    cfg_path = getattr(args, "config", None) or config_path(env)
    name = getattr(args, "context", None) or env.get(CONTEXT_ENV)
    if name or os.path.exists(cfg_path):
        cfg = ConfigFile(cfg_path)
        name = name or cfg.current
        if name:
            ctx = cfg.get(name)
            conn.context = name
    ctx_label = f"context {conn.context} ({cfg_path})"

    # the API address
    layers = [("--socket/--url", getattr(args, "socket", None), getattr(args, "url", None)),
              ("$NUAGE_SOCKET/$NUAGE_URL", env.get("NUAGE_SOCKET"), env.get("NUAGE_URL")),
              (ctx_label, ctx.get("socket"), ctx.get("url"))]
    found = discovered(discovery_paths)
    for label, sock, url in layers:
        if sock or url:
            conn.socket, conn.url = sock or None, None if sock else url
            conn.sources["endpoint"] = label
            break
    else:
        if found:
            path, record = found
            conn.socket, conn.url = record.get("socket"), None if record.get("socket") else record.get("url")
            conn.sources["endpoint"] = f"running directory ({path})"
        else:
            conn.url = DEFAULT_URL
            conn.sources["endpoint"] = "default"

    # the token
    layers = [("--token/--token-file", getattr(args, "token", None), getattr(args, "token_file", None)),
              ("$NUAGE_TOKEN/$NUAGE_TOKEN_FILE", env.get("NUAGE_TOKEN"), env.get("NUAGE_TOKEN_FILE")),
              (ctx_label, None, ctx.get("token-file"))]
    for label, token, token_file in layers:
        if token or token_file:
            conn.token, conn.token_file = token or None, None if token else token_file
            conn.sources["token"] = label
            break
    else:
        if found and _same_api(conn, found[1]):
            conn.token_file = found[1]["token_file"]
            conn.sources["token"] = f"running directory ({found[0]})"
        else:
            conn.token_file = DEFAULT_TOKEN_FILE
            conn.sources["token"] = "default"

    for label, value in (("--ca-file", getattr(args, "ca_file", None)), ("$NUAGE_CA_FILE", env.get("NUAGE_CA_FILE")),
                         (ctx_label, ctx.get("ca-file"))):
        if value:
            conn.ca_file = value
            conn.sources["ca_file"] = label
            break
    return conn


def _same_api(conn: Connection, record: dict) -> bool:
    """Does ``conn`` talk to the directory that ``record`` describes?"""
    if conn.socket:
        return conn.socket == record.get("socket")
    return bool(conn.url) and conn.url.rstrip("/") == record.get("url")


# ---------------------------------------------------------------------------
# nuage-ctl config set | show | use-context | delete-context


def run_config(args, out, env: Mapping[str, str] = os.environ, discovery_paths: list[str] | None = None) -> None:
    """The ``config`` command (needs no API connection)."""
    from nuage_ryu.directory.ctl import render

    path = getattr(args, "config", None) or config_path(env)
    cfg = ConfigFile(path)
    if args.action == "show":
        conn = resolve_connection(args, env, discovery_paths)
        found = discovered(discovery_paths)
        data = {
            "config_file": path,
            "current_context": cfg.current,
            "using": {"context": conn.context, "endpoint": conn.endpoint,
                      "token": "(given)" if conn.token else conn.token_file, "ca_file": conn.ca_file,
                      "from": dict(conn.sources)},
            "contexts": cfg.contexts(),
            "running_directory": {"file": found[0], **found[1]} if found else None,
        }
        output = getattr(args, "output", None) or "table"
        if output in ("json", "yaml"):
            out.write(render.render_data(data, output))
            return
        out.write(f"config file   {path}{'' if os.path.exists(path) else ' (not created yet)'}\n")
        out.write(f"context       {conn.context or '-'}\n")
        out.write(f"endpoint      {conn.endpoint}  [{conn.sources['endpoint']}]\n")
        token = "(given)" if conn.token else conn.token_file
        out.write(f"token         {token}  [{conn.sources['token']}]\n")
        if conn.ca_file:
            out.write(f"ca file       {conn.ca_file}  [{conn.sources['ca_file']}]\n")
        if found:
            out.write(f"running       {found[1].get('url') or found[1].get('socket')} "
                      f"(state dir {found[1].get('state_dir')}, pid {found[1].get('pid')}) via {found[0]}\n")
        rows = [{"current": "*" if name == cfg.current else "", "name": name, **values}
                for name, values in sorted(cfg.contexts().items())]
        if rows:
            out.write("\n")
            render.print_table(rows, ["current", "name", "url", "socket", "token-file", "ca-file"], out)
        return
    if args.action == "use-context":
        cfg.get(args.name)
        cfg.current = args.name
        cfg.save()
        out.write(f"current context is now {args.name} ({path})\n")
        return
    if args.action == "delete-context":
        cfg.delete(args.name)
        cfg.save()
        out.write(f"deleted context {args.name} ({path})\n")
        return
    # set
    name = args.name or cfg.current or "default"
    values = {"url": args.c_url, "socket": args.c_socket, "token-file": args.c_token_file,
              "ca-file": args.c_ca_file}
    if args.c_state_dir:
        record = discovery.read(os.path.join(args.c_state_dir, discovery.FILE_NAME))
        if record is None:
            raise UsageError(f"no running directory published itself in {args.c_state_dir} "
                             f"({discovery.FILE_NAME} missing, or its process is gone)")
        values = {"url": record.get("url") or "", "socket": record.get("socket") or "",
                  "token-file": record["token_file"], **{k: v for k, v in values.items() if v is not None}}
    # One address per context: setting the URL drops a socket set earlier (it would win), and back.
    if values["url"] and values["socket"] is None:
        values["socket"] = ""
    if values["socket"] and values["url"] is None:
        values["url"] = ""
    if all(v is None for v in values.values()) and args.use is None:
        raise UsageError("nothing to set; give --url, --socket, --token-file, --ca-file or --state-dir")
    for key in ("token-file", "ca-file"):
        if values.get(key):
            values[key] = os.path.abspath(values[key])  # the file must work from any directory
    cfg.set(name, values)
    if args.use or (args.use is None and not cfg.current):
        cfg.current = name
    cfg.save()
    out.write(f"context {name} saved in {path}" + (" (current)" if cfg.current == name else "") + "\n")
