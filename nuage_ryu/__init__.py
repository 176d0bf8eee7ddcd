"""nuage-ryu: an SDN controller for containers in the style of Nuage VSP."""

__version__ = "0.1.0"
