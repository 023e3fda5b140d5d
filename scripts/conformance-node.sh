#!/usr/bin/env bash
# Drive a fresh local IoT Hub with Microsoft's Node.js IoT Hub SDKs,
# unmodified (conformance/node/check.js). The Node service SDK cannot take a
# port in HostName, so the hub serves HTTPS on 443 (root needed) and MQTT on
# 8883, as Azure does. Not part of `make test`: it needs npm and root.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "conformance-node needs Node.js and npm" >&2; exit 1; }
data=$(mktemp -d)
trap 'kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; rm -rf "$data"' EXIT
bin/localhub serve --data-dir "$data" --https-addr 127.0.0.1:443 --mqtt-addr 127.0.0.1:8883 --log-level warn >/dev/null &
hub=$!
for _ in $(seq 100); do [ -f "$data/run.json" ] && break; kill -0 "$hub" || exit 1; sleep 0.1; done
[ -f "$data/run.json" ] || { echo "the hub did not start" >&2; exit 1; }
(cd conformance/node && npm install --no-audit --no-fund --silent)
OWNER_CONNECTION_STRING=$(bin/localhub connection-string --data-dir "$data" --policy iothubowner) \
NODE_EXTRA_CA_CERTS="$data/tls/ca.pem" node conformance/node/check.js
