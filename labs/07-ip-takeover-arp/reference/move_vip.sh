#!/bin/bash
# move_vip.sh INTERFACE VIP/PREFIX
#
# Take over a VIP on THIS host (the new holder) and tell the LAN at once.
# Run it after the old holder has released the address (or died), e.g.
#     web1# bash move_vip.sh web1-eth0 <VIP>/24
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 INTERFACE VIP/PREFIX" >&2
    exit 2
fi
iface=$1
vip_cidr=$2
vip=${vip_cidr%/*}

# 1. Take the address.  Running the script twice must not fail: add it only if missing.
if ! ip -4 -o addr show dev "$iface" | grep -qF " inet $vip_cidr "; then
    ip addr add "$vip_cidr" dev "$iface"
fi

# 2. Announce it: a gratuitous ARP is an ARP request whose sender and target IP are both
#    the VIP, sent to the broadcast MAC.  Every host that has the VIP in its ARP cache
#    replaces the old MAC with ours at once, instead of waiting for its entry to expire.
#    Two copies, 0.1 s apart, in case one is lost.  (Debian's arping, by Thomas Habets:
#    -U unsolicited, -S sender IP, -i interface.  iputils' arping: arping -U -c 2 -I IF VIP.)
#    arping exits 1 when nobody answers -- and nobody answers a gratuitous ARP.
arping -q -U -c 2 -W 0.1 -i "$iface" -S "$vip" "$vip" || true
