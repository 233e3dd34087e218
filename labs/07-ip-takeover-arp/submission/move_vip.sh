#!/bin/bash
# move_vip.sh INTERFACE VIP/PREFIX
#
# Take over a VIP on THIS host (the new holder).  The lab runs it in web1 as
#     bash move_vip.sh web1-eth0 <VIP>/24
# after web2 has released the address.  Read guide.en.md (or guide.ja.md) first.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 INTERFACE VIP/PREFIX" >&2
    exit 2
fi
iface=$1
vip_cidr=$2
vip=${vip_cidr%/*}

# TODO 1: put the VIP on "$iface" (ip addr ...).

# TODO 2: tell every host on the LAN that the VIP is now at this host's MAC, so their
#         ARP caches change at once (gratuitous ARP: see `arping --help`).

echo "move_vip.sh: not written yet (would move $vip to $iface)" >&2
