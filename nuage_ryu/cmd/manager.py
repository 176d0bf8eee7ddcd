"""nuage-ryu-manager: run os-ken apps the way ryu-manager does.

    nuage-ryu-manager [--config-file FILE ...] [os-ken options] [APP ...]

APP is a module name (``nuage_ryu.apps.directory_api``) or a file path
(``apps/directory_api.py``). Without APP, the standard set of apps for the
configured ``[DEFAULT] role`` runs.

Differences from os-ken's bare ``AppManager.run_apps``, and why:

* Shutdown. With os-ken's native-thread hub, ``run_apps`` ends with
  ``thread.kill()`` on its ``HubThread`` objects, which have no ``kill``
  method (the known shutdown bug), and the OpenFlow listener thread blocks in
  ``accept()`` forever, so the process never exits cleanly. Here SIGTERM and
  SIGINT set an event; the main thread then closes every app (each app's
  ``close()`` stops its own threads, servers and child processes), flushes the
  logs and exits 0. Threads that Python cannot interrupt (blocked ``accept``)
  end with the process; their sockets are closed by the kernel.
* Errors. Unknown config options, bad values, unknown apps and an OpenFlow
  port that is already taken are reported as one line and a non-zero exit.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading

from oslo_config import cfg

from nuage_ryu import __version__, config

LOG = logging.getLogger("nuage_ryu.manager")

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

# How long closing the apps may take before the process exits anyway.
CLOSE_DEADLINE_S = 15.0
# How often the main thread checks that the apps' main threads still run.
SUPERVISE_INTERVAL_S = 0.5

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ManagerError(Exception):
    """A problem the user can fix; printed as one line."""


def _register_cli(conf: cfg.ConfigOpts) -> None:
    # Importing these registers os-ken's own options (OpenFlow listener,
    # logging) on the shared CONF, exactly as ryu-manager does.
    from os_ken import log as _oslog  # noqa: F401
    from os_ken.controller import controller as _controller  # noqa: F401

    config.register_opts(conf)
    conf.register_cli_opts(
        [cfg.MultiStrOpt("app", positional=True, default=[], help="app module name or file to run")]
    )


def _check_values(conf: cfg.ConfigOpts) -> None:
    """Read every option once so that a bad value fails now, not at first use."""
    for group, opts in config.GROUPS.items():
        ns = conf if group == "DEFAULT" else conf[group]
        for opt in opts:
            getattr(ns, opt.dest)
    for entry in conf.vrs.managed_hosts:
        config.parse_managed_host(entry)
    for name in ("ofp_listen_host", "ofp_tcp_listen_port", "ofp_ssl_listen_port", "log_file", "verbose"):
        getattr(conf, name)


def _use_tls(conf: cfg.ConfigOpts) -> None:
    """With [tls]: python-ovs ``ssl:`` streams and os-ken's OpenFlow listener use that identity."""
    creds = config.tls_credentials(conf)
    if creds is None:
        return
    from nuage_ryu import tls

    tls.use_for_ovsdb_clients(creds)
    for name, value in tls.openflow_overrides(creds, conf.ofp_tcp_listen_port).items():
        conf.set_override(name, value)


def _init_logging(conf: cfg.ConfigOpts) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = []
    if conf.use_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    log_file = conf.log_file
    if not log_file and conf.log_dir:
        log_file = os.path.join(conf.log_dir, "nuage-ryu-manager.log")
    if log_file:
        handlers.append(logging.handlers.WatchedFileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    if conf.verbose:
        root.setLevel(logging.DEBUG)
    elif conf.default_log_level is not None:
        root.setLevel(conf.default_log_level)
    else:
        root.setLevel(logging.INFO)


def _resolve_apps(conf: cfg.ConfigOpts) -> list[str]:
    apps = list(conf.app) or list(config.ROLE_APPS[conf.role])
    resolved = []
    for app in apps:
        for name in app.split(","):
            name = name.strip()
            if name:
                resolved.append(name)
    return resolved


def _check_ofp_listener(conf: cfg.ConfigOpts) -> None:
    """Fail early, with one line, when the OpenFlow port is taken."""
    port = conf.ofp_tcp_listen_port
    if not port:
        return  # os-ken then listens on 6653 and 6633; we only pre-check explicit ports
    host = conf.ofp_listen_host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise ManagerError(f"cannot listen for OpenFlow on {host}:{port}: {exc.strerror}") from None
    finally:
        probe.close()


def _load_apps(app_mgr, apps: list[str]) -> None:
    for app in apps:
        try:
            cls = app_mgr.load_app(app)
        except ImportError as exc:
            raise ManagerError(f"cannot load app {app!r}: {exc}") from None
        except SyntaxError as exc:
            raise ManagerError(f"cannot load app {app!r}: {exc.msg} at {exc.filename}:{exc.lineno}") from None
        if cls is None:
            raise ManagerError(f"{app!r} defines no os-ken app class")
    app_mgr.load_apps(apps)


def _close_apps(app_mgr) -> bool:
    """Close every app within CLOSE_DEADLINE_S; False when it did not finish."""
    done = threading.Event()

    def close() -> None:
        try:
            app_mgr.close()
        except Exception:  # an app's close() failing must not keep the process alive
            LOG.exception("error while closing apps")
        finally:
            done.set()

    threading.Thread(target=close, name="close-apps", daemon=True).start()
    return done.wait(CLOSE_DEADLINE_S)


def run(argv: list[str]) -> int:
    from nuage_ryu import framework

    conf = framework.CONF
    _register_cli(conf)
    try:
        conf(args=argv, project="nuage-ryu", prog="nuage-ryu-manager", version=__version__,
             default_config_files=[])
        config.check_config_files(conf, list(conf.config_file))
        _check_values(conf)
        _use_tls(conf)
    except (cfg.Error, config.ConfigError, ValueError) as exc:
        raise ManagerError(str(exc).splitlines()[0]) from None

    _init_logging(conf)
    apps = _resolve_apps(conf)
    _check_ofp_listener(conf)

    app_mgr = framework.app_manager.AppManager.get_instance()
    _load_apps(app_mgr, apps)

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    LOG.info("nuage-ryu-manager %s starting apps: %s", __version__, ", ".join(apps))
    contexts = app_mgr.create_contexts()
    try:
        services = app_mgr.instantiate_apps(**contexts)
    except Exception as exc:
        # A start failure is usually the environment (OVSDB unreachable, port taken, token
        # missing): one line for the user; the traceback only with --verbose.
        LOG.debug("starting apps failed", exc_info=True)
        _close_apps(app_mgr)
        raise ManagerError(f"starting apps failed: {exc}") from None

    status = EXIT_OK
    while not stop.wait(SUPERVISE_INTERVAL_S):
        dead = [t for t in services if not t.is_alive()]
        if dead:
            # An app's main thread ended by itself (e.g. its server crashed):
            # a controller that silently stopped serving is worse than one that exits.
            LOG.error("an app thread stopped unexpectedly (%s); shutting down", dead[0].name)
            status = EXIT_RUNTIME
            break

    if received:
        LOG.info("received %s, stopping", signal.Signals(received[0]).name)
    if not _close_apps(app_mgr):
        LOG.error("apps did not close within %.0f s", CLOSE_DEADLINE_S)
        status = EXIT_RUNTIME
    LOG.info("stopped")
    return status


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = run(argv)
    except ManagerError as exc:
        print(f"nuage-ryu-manager: error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        status = EXIT_OK
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: the OpenFlow listener and datapath threads of os-ken's native
    # hub cannot be interrupted and are not daemon threads; a normal exit would
    # wait for them forever. Every app has been closed at this point.
    os._exit(status)


if __name__ == "__main__":
    main()
