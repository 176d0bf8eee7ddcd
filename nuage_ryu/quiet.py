"""Quiet eventlet before python-ovs is imported: no deprecation warning, no DNS resolver.

python-ovs imports eventlet when it is installed (os-ken depends on it), only to ask whether
``select`` is monkey-patched. nuage-ryu uses native threads, never eventlet, so:

* eventlet warns about its own deprecation on every start: the warning says nothing about
  this program;
* importing eventlet also imports its green DNS resolver (dnspython, ~0.3 s of imports on an
  idle 2-core host, over 1 s under load: a third of an agent's start-up), unless
  ``EVENTLET_NO_GREENDNS`` is set. Nothing here resolves names through eventlet.

Called by the modules that import python-ovs or the framework (not from
``nuage_ryu/__init__``: the filter compiles a regular expression, an import the
CNI plugin's fast start should not pay for). Under classic ryu-manager eventlet is
imported (and used) before any of this, so nothing changes there.
"""

import os
import warnings


def silence_eventlet_warning() -> None:
    """Filter eventlet's deprecation warning; keep it from importing its DNS resolver (unless set)."""
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
