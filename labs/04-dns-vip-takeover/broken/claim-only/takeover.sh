#!/bin/bash
# takeover.sh -- broken on purpose (issue 8): it claims its own VIP at start and then does
# nothing but stay alive.  It never releases, never takes over, never announces.
#
# Nothing ever moves, so no VIP is ever on two servers and web1 still "has its VIP back"
# after the repair: "no duplicate vip with two servers" and "gives vip back to recovered
# owner" used to pass on doing nothing (and "script is valid bash" on any file).
# Expected: every scored check fails; "script is valid bash" is information.
set -u
: "${INTF:?}" "${MY_VIP:?}"
PREFIX=${PREFIX:-24} INTERVAL=${INTERVAL:-0.2}

until curl -fsS -o /dev/null -m 1 http://127.0.0.1/; do
    sleep "$INTERVAL"
done
ip addr add "$MY_VIP/$PREFIX" dev "$INTF"
echo "claimed $MY_VIP on $INTF; nothing more to do"
while true; do
    sleep "$INTERVAL"
done
