#!/bin/bash
# takeover.sh -- VIP takeover for DNS round robin: STARTER (the notes' idea, unfinished).
#
# The lab runs this script inside every web server (web1, web2, ...) with:
#   SELF        this server's name (web1)            INTF   the interface (web1-eth0)
#   MY_VIP      this server's own VIP                PREFIX the VIPs' prefix length (24)
#   PEER_VIPS   the peers' VIPs, space separated
#   PEER_ADDRS  the peers' own addresses, in the same order as PEER_VIPS
#   INTERVAL    seconds between two rounds of checks TIMEOUT seconds a check may take
# Whatever it prints goes to the run folder: <run>/<host>/takeover/takeover.log
#
# The notes: curl every VIP; when a check fails,
#   - if it is my own VIP, my web service is broken: release my VIP;
#   - if it is a peer's VIP, the peer is broken: take its VIP over.
# `sudo redlab grade 04` says what is still missing.
set -u
PREFIX=${PREFIX:-24} INTERVAL=${INTERVAL:-0.2} TIMEOUT=${TIMEOUT:-0.3}

log() { echo "$(date +%T.%3N) $SELF: $*"; }

holds() {
    ip -4 -o addr show dev "$INTF" | grep -q " inet $1/"
}

log "started: my VIP $MY_VIP, peers $PEER_VIPS"
ip addr add "$MY_VIP/$PREFIX" dev "$INTF"          # each server owns one VIP

while true; do
    for vip in $MY_VIP $PEER_VIPS; do
        if curl -fsS -o /dev/null -m "$TIMEOUT" "http://$vip/" 2>/dev/null; then
            continue
        fi
        if [ "$vip" = "$MY_VIP" ]; then
            log "my VIP $vip fails its check"
            # TODO: my own web service is broken: release my VIP so that a peer can take it
        elif ! holds "$vip"; then
            log "peer VIP $vip fails its check: taking it over"
            ip addr add "$vip/$PREFIX" dev "$INTF"
            # TODO: the client still has the old server's MAC for $vip in its ARP cache
        fi
    done
    # TODO: when a peer comes back, who gives its VIP back, and when?
    sleep "$INTERVAL"
done
