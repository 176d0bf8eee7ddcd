"""Host Open vSwitch management: private OVS instances (process.py) and OVSDB over ovsdbapp (host.py)."""
