#!/bin/bash
# Install the Debian packages nuage-ryu needs (idempotent; run as root).
#
# OVS, Mininet and friends are only used as binaries: the lab and the tests
# start their own private ovsdb-server/ovs-vswitchd instances. So that
# installing openvswitch-switch starts no system service behind our back on a
# systemd machine, a temporary policy-rc.d forbids service starts during the
# install (the Debian-sanctioned way), and is removed afterwards.
set -euo pipefail

PACKAGES=(
    openvswitch-switch openvswitch-common mininet bridge-utils iproute2 iputils-ping iperf3 sockperf
    netcat-openbsd busybox tcpdump procps python3-venv python3-dev gcc make zsh groff-base
    chromium chromium-driver
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi

created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
