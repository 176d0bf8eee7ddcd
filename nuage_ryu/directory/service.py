"""The directory service: embedded ovsdb-server (optional) + store + REST API on cheroot.

Framework-free so that tests, benchmarks and tools can run the exact service the
``DirectoryApi`` os-ken app runs. Start order: token file, database, store, HTTP;
stop order is the reverse.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import threading

from nuage_ryu import config, tls
from nuage_ryu.db import rbac
from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory import audit, discovery, external, ui
from nuage_ryu.directory.api import MAX_BODY, DirectoryAPI
from nuage_ryu.directory.audit import AuditLog
from nuage_ryu.directory.http_server import HardenedServer, deferred_handshake
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.store.verdicts import VerdictFeed
from nuage_ryu.pki import Credentials

LOG = logging.getLogger(__name__)
VERDICT_TRIM_INTERVAL_S = 5.0


def ensure_token_file(path: str) -> str:
    """Read the admin token from ``path``; create it (mode 0600, random token) if missing."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        LOG.info("created admin token file %s", path)
    with open(path) as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty")
    return token


class DirectoryService:
    """Everything the directory role runs, with explicit start/stop."""

    def __init__(self, *, state_dir: str, connection: str = "", listen: str = "", host_listen: str = "",
                 api_host: str = "127.0.0.1",
                 api_port: int = 8080, api_socket: str = "", token_file: str = "", db_socket: str = "",
                 discovery_pointer: str | None = discovery.POINTER, tls: Credentials | None = None,
                 http_limits: dict | None = None, verdict_retention: int = 10000, verdict_waiters: int = 8):
        """``http_limits``: keyword arguments of ``HardenedServer`` (header_timeout, body_timeout,
        max_connections); absent ones keep http_server's defaults."""
        self.state_dir = state_dir
        self.http_limits = dict(http_limits or {})
        self.connection = connection
        self.listen = listen
        self.host_listen = host_listen  # pssl: listeners with the RBAC host role (ovsdb/rbac.py)
        self.api_host = api_host
        self.api_port = api_port
        self.api_socket = api_socket
        self.token_file = token_file or os.path.join(state_dir, "api-token")
        self.db_socket = db_socket or os.path.join(state_dir, "directory", "db.sock")
        self.db_server: OvsdbServer | None = None
        self.store: DirectoryStore | None = None
        self.api: DirectoryAPI | None = None
        self._servers: list[HardenedServer] = []
        self._threads: list[threading.Thread] = []
        self.discovery_pointer = discovery_pointer  # None: write only <state_dir>/directory.json
        self._discovery: tuple[dict, list[str]] | None = None
        self.tls = tls  # HTTPS on api_port, and the identity of the DB's pssl:/ssl: connections
        self.verdict_retention = verdict_retention  # verdict records kept in the database (docs/policy.md)
        self.verdict_waiters = verdict_waiters
        self._stopping = threading.Event()

    @classmethod
    def from_conf(cls, conf) -> DirectoryService:
        """Build from the oslo.config options of section [directory]."""
        d = conf.directory
        external.configure_pool(d.floating_ip_pool)  # operator configuration, read by the change planner
        return cls(state_dir=conf.state_dir, connection=d.connection, listen=d.listen, host_listen=d.host_listen,
                   api_host=d.api_host,
                   api_port=d.api_port, api_socket=d.api_socket, token_file=config.api_token_file(conf),
                   db_socket=config.directory_socket(conf), tls=config.tls_credentials(conf),
                   http_limits={"header_timeout": d.api_header_timeout, "body_timeout": d.api_body_timeout,
                                "max_connections": d.api_max_connections},
                   verdict_retention=d.verdict_retention, verdict_waiters=d.verdict_waiters)

    @property
    def db_remote(self) -> str:
        return self.connection or "unix:" + self.db_socket

    def start(self) -> threading.Thread | None:
        """Start everything; returns the main HTTP server thread. Cleans up on failure."""
        try:
            token = ensure_token_file(self.token_file)
            if self.tls:
                tls.use_for_ovsdb_clients(self.tls)
            if not self.connection:
                db_dir = os.path.join(self.state_dir, "directory")
                listen = [r.strip() for r in self.listen.split(",") if r.strip()]
                self.db_server = OvsdbServer(os.path.join(db_dir, "directory.db"), schema_path(),
                                             self.db_socket, listen, ssl=self.tls,
                                             host_remotes=[r.strip() for r in self.host_listen.split(",")
                                                           if r.strip()])
                self.db_server.start()
            else:
                self._write_host_role()
            feed = VerdictFeed(self.verdict_retention, self.verdict_waiters)  # GET /verdicts (docs/policy.md)
            self.store = DirectoryStore(self.db_remote, all_counters=True,  # GET shows every host's counters
                                        verdict_feed=feed)
            self.store.start()
            # The modules and the replica just loaded live as long as the process: keep them out of
            # the cyclic garbage collector's full passes, each of which would walk every object of
            # a 100k-vport directory again (≈2 s of CPU; docs/scale.md). Collected first, so that
            # no garbage is kept; objects frozen are still freed when nothing refers to them.
            gc.collect()
            gc.freeze()
            self._stopping.clear()
            trimmer = threading.Thread(target=self._trim_verdicts, name="directory-verdict-trim", daemon=True)
            trimmer.start()
            self.api = DirectoryAPI(self.store, token,
                                    audit=AuditLog(os.path.join(self.state_dir, audit.AUDIT_FILE)))
            if self.api_port:
                self._serve((self.api_host, self.api_port))
            if self.api_socket:
                try:
                    os.unlink(self.api_socket)
                except FileNotFoundError:
                    pass
                self._serve(self.api_socket)
            if not self._servers:
                raise ValueError("the REST API has neither api_port nor api_socket")
            self._publish()
        except BaseException:
            self.stop()
            raise
        return self._threads[0]

    def _trim_verdicts(self) -> None:
        """Keep the newest ``verdict_retention`` verdict records in the database (the agents only insert)."""
        slack = max(10, self.verdict_retention // 10)  # one delete per tenth of the retention, not per batch
        while not self._stopping.wait(VERDICT_TRIM_INTERVAL_S):
            store = self.store
            if store is None:
                return
            try:
                if store.verdict_rows() > self.verdict_retention + slack:
                    store.trim_verdicts(self.verdict_retention)
            except Exception as exc:  # the next round retries
                LOG.info("old verdict records not deleted: %s", exc)

    def _write_host_role(self) -> None:
        """An external database (a Raft cluster) gets the RBAC host role too: its members take no
        listener rows, but relays following it check the role for their hosts (rbac.py)."""
        try:
            rbac.apply(self.connection, None, ssl_args=tuple(tls.ovsdb_server_args(self.tls)) if self.tls else ())
        except rbac.RbacError as exc:  # relays then refuse every host write: say why
            LOG.warning("cannot write the RBAC host role into %s (hosts behind relays cannot write): %s",
                        self.connection, exc)

    def _publish(self) -> None:
        # So that nuage-ctl on this machine finds the API and token file without options.
        scheme = "https" if self.tls else "http"
        url = discovery.api_url(self.api_host, self.bound_port, scheme) if self.bound_port else None
        record = discovery.describe(self.state_dir, url, self.api_socket, self.token_file,
                                    self.tls.ca_file if self.tls else None)
        self._discovery = (record, discovery.publish(record, self.discovery_pointer))

    def _serve(self, bind) -> None:
        # Timeouts, connection limit and a deep accept queue: see http_server.
        server = HardenedServer(bind, ui.mount(self.api), server_name="nuage-ryu-directory", **self.http_limits)
        # Backstop only: the API answers bodies above MAX_BODY itself with a JSON 413.
        server.max_request_body_size = 4 * MAX_BODY
        if self.tls and isinstance(bind, tuple):  # the unix socket is local: file permissions guard it
            server.ssl_adapter = deferred_handshake(tls.https_adapter(self.tls))
        server.prepare()  # binds now, so that a taken port fails start()
        thread = threading.Thread(target=server.serve, name=f"directory-http-{bind}", daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        LOG.info("directory REST API listening on %s", bind)

    @property
    def bound_port(self) -> int | None:
        """The TCP port actually bound (useful with api_port picked by the OS)."""
        for server in self._servers:
            addr = server.bind_addr
            if isinstance(addr, tuple):
                return addr[1]
        return None

    def stop(self) -> None:
        """Stop HTTP, the store and the embedded ovsdb-server (by pid)."""
        self._stopping.set()
        if self._discovery:
            discovery.withdraw(*self._discovery)
            self._discovery = None
        for server in self._servers:
            try:
                server.stop()
            except Exception:  # stopping must continue with the next part
                LOG.exception("stopping the HTTP server failed")
        for thread in self._threads:
            thread.join(5)
        self._servers.clear()
        self._threads.clear()
        if self.store:
            self.store.stop()
            self.store = None
        if self.db_server:
            self.db_server.stop()
            self.db_server = None
        if self.api_socket:
            try:
                os.unlink(self.api_socket)
            except FileNotFoundError:
                pass
