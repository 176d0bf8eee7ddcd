"""Silence eventlet's self-deprecation warning before python-ovs is imported.

python-ovs imports eventlet when it is installed (os-ken depends on it), and
eventlet then warns about its own deprecation on every start. nuage-ryu uses
native threads, never eventlet: the warning says nothing about this program.
Called by the modules that import python-ovs or the framework (not from
``nuage_ryu/__init__``: the filter compiles a regular expression, an import the
CNI plugin's fast start should not pay for).
"""

import warnings


def silence_eventlet_warning() -> None:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
