#!/usr/bin/env bash
# Drive a fresh local IoT Hub with Microsoft's Node.js IoT Hub SDKs,
# unmodified (conformance/node/check.js, run by conformance/node_test.go).
# `make test` runs the same test and skips it, saying why, without Node.js,
# npm or the right to bind port 443 (the Node service SDK cannot take a
# port); here each of those is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCALHUB_NODE_CONFORMANCE=require exec "${GO:-go}" test -race -count=1 -v -run '^TestNodeSDKs$' ./conformance
