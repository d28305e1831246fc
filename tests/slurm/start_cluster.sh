#!/usr/bin/env bash
# Start a single-node SLURM cluster (node "localhost", one fake GPU) for the workflow's
# cluster test.
#
# When SLURM is not installed and this runs as root on a Debian/Ubuntu machine, it installs
# Debian's slurm-wlm and munge with apt-get, writes /etc/slurm/slurm.conf and gres.conf from
# the templates beside this script, creates a munge key, starts munged, slurmctld and
# slurmd, and waits until sinfo shows the node idle.
#
# Exit status: 0 = a cluster answers (started here, or one was already running);
#              77 = SLURM cannot be started here (reason on stderr; the test skips);
#              anything else = starting failed (the test fails).
# The daemons it starts are listed in $STATE/started; stop_cluster.sh stops them by PID.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${ISAAC_SLURM_STATE:-/var/lib/isaac-slurm-test}"
WAIT_S="${ISAAC_SLURM_WAIT_S:-60}"

cannot() { echo "cannot start SLURM: $*" >&2; exit 77; }
log() { echo "start_cluster: $*" >&2; }

node_idle() {
    # "idle" (or "mixed"/"allocated" if a previous run left jobs) means the node is usable.
    local state
    state="$(sinfo --noheader --nodes=localhost --format=%t 2>/dev/null | head -n1 || true)"
    [[ "$state" =~ ^(idle|mix|alloc)$ ]]
}

# A cluster that already answers is used as it is (and left running afterwards).
if command -v sinfo >/dev/null 2>&1 && node_idle; then
    log "a SLURM cluster with node localhost is already running; using it"
    exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v munged >/dev/null 2>&1; then
    [[ "$(id -u)" == 0 ]] || cannot "SLURM is not installed and installing it needs root"
    command -v apt-get >/dev/null 2>&1 || cannot "SLURM is not installed and apt-get is absent"
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || cannot "apt-get update failed (no package mirror reachable?)"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2 \
        || cannot "apt-get install slurm-wlm munge failed"
fi
[[ "$(id -u)" == 0 ]] || cannot "starting slurmctld/slurmd as configured here needs root"

# Hardware as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), so the node is
# not drained for a mismatch; fall back to nproc and /proc/meminfo.
hardware="$(slurmd -C 2>/dev/null | head -n1 | tr ' ' '\n' \
    | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' \
    | tr '\n' ' ' || true)"
if [[ "$hardware" != *CPUs=* || "$hardware" != *RealMemory=* ]]; then
    mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
    hardware="CPUs=$(nproc) RealMemory=${mem_mb}"
fi
log "node localhost: ${hardware}Gres=gpu:2 (fake)"

# Never overwrite a configuration that this script did not write (a real installation).
MARK="written by tests/slurm/start_cluster.sh"
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [[ -e "$conf" ]] && ! grep -q "$MARK" "$conf"; then
        cannot "$conf exists and was not written by this script; leaving it alone"
    fi
done

mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
: > "$STATE/started"
sed -e "s|@STATE@|$STATE|g" -e "s|@HARDWARE@|$hardware|" "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf
cp "$HERE/gres.conf.in" /etc/slurm/gres.conf

# munge: a key readable only by its daemon's user, then the daemon.
if ! pgrep -x munged >/dev/null 2>&1; then
    install -d -m 0700 /etc/munge
    install -d -m 0755 /run/munge
    install -d -m 0700 /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chmod 0400 /etc/munge/munge.key
    if id munge >/dev/null 2>&1; then
        chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
        runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    else
        munged --force --pid-file=/run/munge/munged.pid
    fi
    echo /run/munge/munged.pid >> "$STATE/started"
fi

slurmctld >&2
echo "$STATE/slurmctld.pid" >> "$STATE/started"
slurmd -N localhost >&2
echo "$STATE/slurmd.pid" >> "$STATE/started"

for _ in $(seq "$WAIT_S"); do
    if node_idle; then
        log "node localhost is idle"
        sinfo >&2
        exit 0
    fi
    # A node that comes up "down" or "drained" after a restart is put back in service.
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "start_cluster: node localhost did not become idle within ${WAIT_S}s" >&2
sinfo -N -l >&2 || true
tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
exit 1
