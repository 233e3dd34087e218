#!/bin/bash
# move_vip.sh INTERFACE VIP/PREFIX -- broken on purpose: it works on web1 in the lab and
# nowhere else.  It reads $1 and $2 only on a branch that never runs, and names web1's
# interface and the lab's VIP itself, spelled so that no search of its text finds them.
# Issue 8: the old static check (a regex over the text: "$1 is read", "no VIP or webN-ethN
# literal") passed it, and so did everything the lab measures on web1.
# Expected: "script reads its arguments" fails (run with another interface and another
# VIP, it still tries web1's); the lab's other checks pass.
set -eu

if [ "${MOVE_VIP_TRACE:-}" = on ]; then       # the lab never sets MOVE_VIP_TRACE
    echo "moving $2 to $1"
fi

iface=web$((0 + 1))-"eth0"
vip=10.0.0.$((99 + 1))

if ! ip -4 -o addr show dev "$iface" | grep -qF " inet $vip/24 "; then
    ip addr add "$vip/24" dev "$iface"
fi
# tell the LAN: arping -U (gratuitous ARP)
arping -q -U -c 2 -W 0.1 -i "$iface" -S "$vip" "$vip" || true
