"""DirectoryApi: the directory role (VSD) as an os-ken app.

Thin glue: all work is in ``nuage_ryu.directory.service.DirectoryService``
(embedded ovsdb-server when ``[directory] connection`` is empty, the IDL store,
and the REST API served by cheroot). This app handles no OpenFlow events.
"""

from nuage_ryu.directory.service import DirectoryService
from nuage_ryu.framework import CONF, BaseApp


class DirectoryApi(BaseApp):
    """Starts the directory service with the app, stops it on close."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.service = DirectoryService.from_conf(CONF)

    def start(self):
        super().start()
        # The HTTP thread is the app's main thread: if it dies, nuage-ryu-manager notices and exits.
        return self.service.start()

    def close(self):
        self.service.stop()
        super().close()
