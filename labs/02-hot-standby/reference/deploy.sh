#!/bin/sh
# deploy.sh FILE -- publish FILE on the active AND the standby web server (hot standby:
# every update reaches both, so the standby can take over with the same content).
set -e
for server in "$ACTIVE" "$STANDBY"; do
    curl -fsS -T "$1" "http://$server/deploy/index.html"
    # read it back: the update is only done when the server really serves it
    curl -fsS "http://$server/index.html" | cmp -s - "$1" || {
        echo "deploy: $server does not serve the new page" >&2
        exit 1
    }
done
