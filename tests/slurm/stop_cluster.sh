#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh STATE_DIR started (listed in STATE_DIR/started),
# by their process ids, newest first, and remove its config links; anything it did not start is left alone.
set -uo pipefail
STATE=${1:?usage: $0 STATE_DIR}
[ -f "$STATE/started" ] || exit 0
tac "$STATE/started" | while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    if [ "$name" = link ]; then  # a link to this cluster's config: removed while it still is one
        [ -L "$pid" ] && case "$(readlink "$pid")" in "$STATE"/*) rm -f "$pid" ;; esac
        continue
    fi
    # Only a process that still is that daemon (a recycled pid is someone else's).
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        echo "stop_cluster: stopped $name ($pid)" >&2
    fi
done
: >"$STATE/started"
