#!/bin/bash
# move_vip.sh INTERFACE VIP/PREFIX -- take over a VIP on this host.
# (Looks finished: the address moves, and `ip addr` on the new holder shows it.)
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 INTERFACE VIP/PREFIX" >&2
    exit 2
fi
iface=$1
vip_cidr=$2

if ! ip -4 -o addr show dev "$iface" | grep -qF " inet $vip_cidr "; then
    ip addr add "$vip_cidr" dev "$iface"
fi
