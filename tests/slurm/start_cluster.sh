#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, over loopback and without systemd, for
# tests/test_slurm.py (and for trying profiles/slurm by hand).
#
#   tests/slurm/start_cluster.sh STATE_DIR     # then: export SLURM_CONF=STATE_DIR/slurm.conf
#   tests/slurm/stop_cluster.sh STATE_DIR      # stops exactly the daemons this script started
#
# Needs root (Debian/Ubuntu): installs slurmctld, slurmd, slurm-client and munge with apt-get when
# they are missing. Idempotent: it starts only what is not running yet (munged is shared with the
# machine; slurmctld and slurmd are this STATE_DIR's) and records each daemon it started, as
# "name pid", in STATE_DIR/started. Config, spool, state and logs all live under STATE_DIR; the only
# file outside it is a link /etc/slurm/slurm.conf (and gres.conf) to that config, made when the
# machine has none (see step 4) and removed by stop_cluster.sh. Exits 3, saying "cannot run here",
# where this machine cannot host the cluster (apt-get failed, a SLURM config of its own).
# The node has CPUs=2 (fewer if the machine has fewer), RealMemory below the available memory and
# two fake GPUs (gres File=/dev/null,/dev/zero): jobs asking for GPUs get them allocated
# (CUDA_VISIBLE_DEVICES is set) and fall back to the CPU because no CUDA device really exists.
set -euo pipefail

STATE=${1:?usage: $0 STATE_DIR}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
CONF=$STATE/slurm.conf
export SLURM_CONF=$CONF

say() { echo "start_cluster: $*" >&2; }
die() { say "$*"; case "$*" in "cannot run here"*) exit 3 ;; esac; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && cat "$1" || true; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {  # free_port FROM: the first port from FROM on that nothing listens on
    local port=$1
    until port_free "$port" && port_free "$((port + 1))"; do port=$((port + 2)); done
    echo "$port"
}
wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

[ "$(id -u)" = 0 ] || die "needs root (apt-get, munged as user munge, slurmd)"

# 1. Packages (about 5 s when the package lists are fresh).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    packages="slurmctld slurmd slurm-client munge"
    apt-get install -y -q --no-install-recommends $packages >"$STATE/apt.log" 2>&1 \
        || { apt-get update -q >>"$STATE/apt.log" 2>&1 \
             && apt-get install -y -q --no-install-recommends $packages >>"$STATE/apt.log" 2>&1; } \
        || die "cannot run here: apt-get install failed ($(tail -n 3 "$STATE/apt.log" | tr '\n' ' '))"
fi
touch "$STATE/started"

# 2. munge: the machine's own daemon; started (as user munge) only when none answers.
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 sh -c 'munge -n </dev/null | unmunge' || die "munged did not start"
    echo "munged $(cat /run/munge/munged.pid)" >>"$STATE/started"
    say "started munged"
fi

# 3. slurm.conf and gres.conf (rewritten only while our slurmctld is not running).
HOST=$(hostname -s)
CPUS=$(nproc); [ "$CPUS" -gt 2 ] && CPUS=2
AVAILABLE_MB=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
MEMORY_MB=$((AVAILABLE_MB * 8 / 10))
if ! alive "$(pid_of "$STATE/slurmctld.pid")"; then
    rm -rf "$STATE/ctld" "$STATE/d"   # stale state from an earlier run would confuse the new daemons
    # Ports of our own, next to each other (another cluster on this machine keeps its own).
    CTLD_PORT=$(free_port "${SLURMCTLD_PORT:-16817}")
    SLURMD_PORT=$((CTLD_PORT + 1))
    mkdir -p "$STATE/ctld" "$STATE/d"
    cat >"$CONF" <<CONF
# Written by tests/slurm/start_cluster.sh: one node over loopback, two fake GPUs.
ClusterName=speechrecipe
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    # Without File= the node goes INVAL; /dev/null and /dev/zero stand in for the devices.
    echo "NodeName=$HOST Name=gpu File=/dev/null,/dev/zero" >"$STATE/gres.conf"
fi

# 4. The config where every client finds it: inside a job, snakemake's SLURM job step runs the rule
#    with srun after dropping SLURM_* variables, SLURM_CONF included, so srun reads the default
#    /etc/slurm/slurm.conf. A link there to ours (removed by stop_cluster.sh); a machine with a
#    SLURM config of its own is not one to run this cluster on.
for file in slurm.conf gres.conf; do
    link=/etc/slurm/$file
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$STATE/$file" ]; then
        continue
    elif [ -e "$link" ] || [ -L "$link" ]; then
        die "cannot run here: $link exists (this machine has a SLURM of its own)"
    fi
    mkdir -p /etc/slurm
    ln -s "$STATE/$file" "$link"
    echo "link $link" >>"$STATE/started"
done

if ! alive "$(pid_of "$STATE/slurmctld.pid")"; then
    slurmctld -f "$CONF"
    wait_for 30 sh -c "[ -s '$STATE/slurmctld.pid' ]" || die "slurmctld did not start (see $STATE/slurmctld.log)"
    echo "slurmctld $(cat "$STATE/slurmctld.pid")" >>"$STATE/started"
    say "started slurmctld"
fi
wait_for 30 scontrol ping || die "slurmctld does not answer (see $STATE/slurmctld.log)"

if ! alive "$(pid_of "$STATE/slurmd.pid")"; then
    slurmd -f "$CONF" -N "$HOST"
    wait_for 30 sh -c "[ -s '$STATE/slurmd.pid' ]" || die "slurmd did not start (see $STATE/slurmd.log)"
    echo "slurmd $(cat "$STATE/slurmd.pid")" >>"$STATE/started"
    say "started slurmd"
fi
node_ready() { sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'; }
wait_for 60 node_ready || die "node not ready: $(sinfo -h -N -o '%N %t %E' 2>&1) (see $STATE/slurmd.log)"
say "cluster up: $(sinfo -h -N -o '%N %t cpus=%c mem=%m gres=%G')"
echo "export SLURM_CONF=$CONF"
