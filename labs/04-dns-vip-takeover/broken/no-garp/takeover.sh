#!/bin/bash
# takeover.sh -- VIP takeover for DNS round robin; broken case no-garp: never sends GARP.
#
# Runs inside every web server.  The lab starts it with these variables:
#   SELF        this server's name (web1)            INTF   the interface (web1-eth0)
#   MY_VIP      this server's own VIP                PREFIX the VIPs' prefix length (24)
#   PEER_VIPS   the peers' VIPs, space separated
#   PEER_ADDRS  the peers' own addresses, in the same order as PEER_VIPS
#   INTERVAL    seconds between two rounds of checks TIMEOUT seconds a check may take
#
# Every INTERVAL it curls each VIP (a layer-7 check: HTTP 200, not ping):
#   - my own VIP fails     -> my web service is broken: release my VIP
#   - a peer's VIP fails   -> the peer's service is broken: take its VIP over
#                             (ip addr add)
# and it gives VIPs back:
#   - I hold a peer's VIP and the peer answers again on its own address
#                          -> release the peer's VIP (the holder moves first)
#   - I do not hold my VIP, my nginx answers locally and nobody answers ARP
#     for my VIP any more  -> claim it (this is also how it starts)
# Release-first and "take over only after FALL failed checks" keep two servers
# from holding one VIP when there are two servers.  With three, see the guide.
set -u
: "${SELF:?}" "${INTF:?}" "${MY_VIP:?}"
PEER_VIPS=${PEER_VIPS:-} PEER_ADDRS=${PEER_ADDRS:-}
PREFIX=${PREFIX:-24} INTERVAL=${INTERVAL:-0.2} TIMEOUT=${TIMEOUT:-0.3}
FALL=${FALL:-3}                    # failed checks in a row before taking a peer's VIP
read -r -a vips <<<"$PEER_VIPS"
read -r -a addrs <<<"$PEER_ADDRS"
declare -A fails

log() { echo "$(date +%T.%3N) $SELF: $*"; }

healthy() {                         # HTTP 200 within TIMEOUT
    curl -fsS -o /dev/null -m "$TIMEOUT" "http://$1/" 2>/dev/null
}

holds() {
    ip -4 -o addr show dev "$INTF" | grep -q " inet $1/"
}

answered_by() {                     # who else answers ARP for $1 (probe from 0.0.0.0)
    arping -0 -c 1 -C 1 -w 0.5 -i "$INTF" "$1" 2>/dev/null | grep -o -m 1 -E '([0-9a-f]{2}:){5}[0-9a-f]{2}'
}

take() {                            # add the VIP
    # (no announcement: the switch learns where the VIP is from our own traffic)
    ip addr add "$1/$PREFIX" dev "$INTF"
}

release() {
    ip addr del "$1/$PREFIX" dev "$INTF"
}

log "started: my VIP $MY_VIP, peers ${PEER_VIPS:-none} (owners ${PEER_ADDRS:-?})"
while true; do
    # -- my own VIP ---------------------------------------------------------------
    if holds "$MY_VIP"; then
        if ! healthy "$MY_VIP"; then
            log "my VIP $MY_VIP fails its check: my web service is broken, releasing $MY_VIP"
            release "$MY_VIP"
        fi
    elif healthy 127.0.0.1; then
        other=$(answered_by "$MY_VIP")
        if [ -z "$other" ]; then
            log "my web service answers and nobody holds $MY_VIP: claiming it"
            take "$MY_VIP"
        else
            log "my web service answers but $MY_VIP is still held by $other: waiting for it to release"
        fi
    fi
    # -- the peers' VIPs ----------------------------------------------------------
    for i in "${!vips[@]}"; do
        vip=${vips[$i]} owner=${addrs[$i]:-}
        if holds "$vip"; then
            if [ -n "$owner" ] && healthy "$owner"; then
                log "owner $owner of $vip answers again: releasing $vip"
                release "$vip"
                fails[$vip]=0
            fi
            continue
        fi
        if healthy "$vip"; then
            fails[$vip]=0
            continue
        fi
        fails[$vip]=$(( ${fails[$vip]:-0} + 1 ))
        if (( fails[$vip] < FALL )); then
            log "peer VIP $vip fails its check (${fails[$vip]}/$FALL)"
        elif [ -n "$owner" ] && healthy "$owner"; then
            log "peer VIP $vip fails but its owner $owner answers: it is coming back, not taking over"
        else
            log "peer VIP $vip failed $FALL checks: its service is down, taking over $vip"
            take "$vip"
            fails[$vip]=0
        fi
    done
    sleep "$INTERVAL"
done
