"""DirectoryApi: the directory role (VSD) as an os-ken app.

Thin glue: all work is in ``nuage_ryu.directory.service.DirectoryService``
(embedded ovsdb-server when ``[directory] connection`` is empty, the IDL store,
and the REST API served by cheroot). This app handles no OpenFlow events.
"""

from nuage_ryu import config
from nuage_ryu.directory.service import DirectoryService
from nuage_ryu.framework import CONF, BaseApp


def _ensure_options(conf) -> None:
    """nuage-ryu-manager registers our options; classic ryu-manager does not (then they are
    registered here as plain config-file options, which is allowed after argument parsing)."""
    if "directory" in conf and "state_dir" in conf:
        return
    if "state_dir" not in conf:
        conf.register_opts(config.DEFAULT_OPTS)
    if "directory" not in conf:
        conf.register_opts(config.DIRECTORY_OPTS, group="directory")


class DirectoryApi(BaseApp):
    """Starts the directory service with the app, stops it on close."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _ensure_options(CONF)
        self.service = DirectoryService.from_conf(CONF)

    def start(self):
        super().start()
        # The HTTP thread is the app's main thread: if it dies, nuage-ryu-manager notices and exits.
        return self.service.start()

    def stop(self):
        # AppManager.uninstantiate() calls stop(); nuage-ryu-manager calls close(). Both are safe
        # to call more than once.
        self.service.stop()
        super().stop()

    def close(self):
        self.service.stop()
        super().close()
