"""nuage-ctl: the directory REST API from the shell (like ovn-nbctl).

    nuage-ctl [CONNECTION OPTIONS] [-o table|wide|json|yaml] OBJECT ACTION [ARGS]
    nuage-ctl enterprise create acme
    nuage-ctl acl list --domain acme/prod -o wide

One module per job: ``parser`` (the command line, help, examples), ``resolve`` (names, paths
and id prefixes <-> ids), ``render`` (tables, JSON, YAML), ``context`` (where to connect:
options, environment, config file contexts, a running directory), ``commands`` (the object
actions), ``errors`` (API messages in CLI words), ``completion`` and ``manpage`` (generated
from the parser), ``main`` (entry point, exit codes). See docs/nuage-ctl.md.
Stdlib only on the default path, so that it starts fast (PyYAML is imported for -o yaml).
"""

from nuage_ryu.directory.ctl.main import console_main, main

__all__ = ["console_main", "main"]
