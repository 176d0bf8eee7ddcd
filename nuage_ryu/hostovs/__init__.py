"""Host Open vSwitch management: private OVS instances (process.py) and OVSDB over ovsdbapp (host.py)."""

from nuage_ryu.quiet import silence_eventlet_warning

silence_eventlet_warning()  # this package imports python-ovs, which imports eventlet
