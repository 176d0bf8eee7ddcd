#!/bin/bash
# Install classic Ryu 4.34 into a separate venv (.venv-ryu) so that the
# framework-compat path (nuage_ryu/framework.py) can be smoke-tested.
#
# Ryu is unmaintained (last release 2020): its setup.py needs an old
# setuptools (<68) and must be built without build isolation; it pins an old
# dnspython that breaks on Python 3.11 (so dnspython>=2); and newer eventlet
# dropped eventlet.wsgi.ALREADY_HANDLED, which scripts/ryu-manager-compat
# defines before ryu.cmd.manager is imported.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RYU_VENV:-.venv-ryu}
PY=${PYTHON:-python3}

if [ -x "$VENV/bin/ryu-manager" ] && "$VENV/bin/python" -c "import ryu, nuage_ryu" 2>/dev/null; then
    echo "classic Ryu already installed in $VENV"
    exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "setuptools<68" wheel pbr
"$VENV/bin/pip" install -q --no-build-isolation "ryu==4.34" "dnspython>=2" "eventlet>=0.33"
# Our package without its os-ken dependency tree; only what the compat apps import.
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
"$VENV/bin/pip" install -q netaddr
"$VENV/bin/python" scripts/ryu-manager-compat --version >/dev/null 2>&1
echo "classic Ryu installed in $VENV"
