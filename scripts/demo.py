#!/usr/bin/env python3
"""make demo: run the nuage-ryu demo lab (see nuage_ryu/lab/demo.py)."""

import sys

from nuage_ryu.lab.demo import run

if __name__ == "__main__":
    sys.exit(run())
