#!/usr/bin/env python3
"""make demo [KEEP=1] [PREFIX=NAME]: run the nuage-ryu demo lab (see nuage_ryu/lab/demo.py)."""

import argparse
import sys

from nuage_ryu.lab.demo import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The nuage-ryu demo: a 3-host lab, two tenants, real traffic.")
    parser.add_argument("--keep", action="store_true",
                        help="leave the lab, control plane and endpoints up (remove with nuage-lab down)")
    parser.add_argument("--prefix", default=None,
                        help="name prefix of the demo's namespaces, 1-10 letters/digits (default: demo + "
                             "6 random hex digits, so overlapping runs never collide)")
    parser.add_argument("--state-dir", default=None, help="the lab's state dir (default: a new temporary one)")
    args = parser.parse_args()
    if args.prefix is not None and not (1 <= len(args.prefix) <= 10):
        parser.error("--prefix: 1-10 characters (the demo's interface names add up to 5)")
    sys.exit(run(state_dir=args.state_dir, prefix=args.prefix, keep=args.keep))
