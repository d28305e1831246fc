#!/usr/bin/env bash
# Stop the daemons that start_cluster.sh started (by the PIDs in their pid files), in
# reverse order, and wait for them to exit. A cluster it did not start is left alone.
set -uo pipefail

STATE="${ISAAC_SLURM_STATE:-/var/lib/isaac-slurm-test}"
[[ -f "$STATE/started" ]] || exit 0

pidfiles="$(tac "$STATE/started")"
for pidfile in $pidfiles; do
    [[ -s "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_cluster: $pidfile ($pid) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
rm -f "$STATE/started"
