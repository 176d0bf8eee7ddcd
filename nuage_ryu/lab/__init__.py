"""The multi-host lab: hosts in network namespaces with their own OVS (lab.py, netns.py, cli.py)."""
