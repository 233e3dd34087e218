#!/bin/sh
# deploy.sh FILE -- publish FILE as the web site's index.html.
#
# Runs on client1, the operator's workstation. The lab sets:
#   VIP      the service address (whoever is VRRP master answers it)
#   ACTIVE   web1's own address      STANDBY  web2's own address
# A server accepts a new page by HTTP PUT to http://SERVER/deploy/index.html
#
# TODO: this only updates whoever holds the VIP. What does the standby serve
#       after a failover?
set -e
curl -fsS -T "$1" "http://$VIP/deploy/index.html"
