from nuage_ryu.quiet import silence_eventlet_warning

silence_eventlet_warning()  # this package imports python-ovs, which imports eventlet
