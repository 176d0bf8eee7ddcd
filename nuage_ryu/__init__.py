"""nuage-ryu: an SDN controller for containers in the style of Nuage VSP."""

import warnings

__version__ = "0.1.0"

# python-ovs imports eventlet when it is installed (os-ken depends on it) and
# eventlet then warns about its own deprecation on every start. nuage-ryu uses
# native threads, never eventlet: the warning says nothing about this program.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
