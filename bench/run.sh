#!/bin/bash
# The load benchmark: sipp caller (digest auth) -> Switchboard -> sipp app
# server, stepping the call rate. See README "Benchmarks" and --help.
#   bench/run.sh [--db sqlite|postgres|sqlite,postgres] [--rates 500,1000,...]
#                [--duration 20] [--with-kamailio]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
command -v sipp >/dev/null || { echo "sipp is missing: apt-get install -y sip-tester"; exit 2; }
exec python3 -B "$HERE/lib/ladder.py" "$@"
