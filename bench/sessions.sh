#!/bin/bash
# The state benchmark: N concurrent established sessions through
# Switchboard; RSS per session and GET /v1/sessions latency at that size.
#   bench/sessions.sh N [--db sqlite|postgres] [--rate 1000] [--settle 60]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
command -v sipp >/dev/null || { echo "sipp is missing: apt-get install -y sip-tester"; exit 2; }
exec python3 -B "$HERE/lib/sessions.py" "$@"
