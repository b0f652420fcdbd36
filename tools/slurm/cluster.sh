#!/usr/bin/env bash
# A real, single-node SLURM cluster on loopback, for testing the workflow's
# SLURM profile (profiles/slurm) against the real daemons.
#
#   tools/slurm/cluster.sh start    install if needed, configure, start everything
#   tools/slurm/cluster.sh stop     stop every daemon it started (state is kept)
#   tools/slurm/cluster.sh status   exit 0 when every daemon is up and the node is usable
#   tools/slurm/cluster.sh env      print the `export` lines a shell needs to use it
#   tools/slurm/cluster.sh purge    stop, then delete the state directory
#
# What runs (all as root, all bound to 127.0.0.1):
#   munged     authentication, with its own key and socket
#   mariadbd   the accounting database (own datadir and port)
#   slurmdbd   accounting: sacct/sacctmgr work, accounts are enforced
#   slurmctld  the controller, with a job completion log (jobcomp/filetxt)
#   slurmd     the one compute node: every CPU of this machine, a memory size
#              just below the real one, and one GPU that is *declared* only
#              (gres gpu backed by /dev/null): jobs that ask for --gpus=1 or
#              --gres=gpu:1 are scheduled exactly as on a GPU node, but see no
#              device. Two partitions share the node: `debug` (the default) and
#              `photoz`; two accounts: `root` (default) and `photoz`.
#
# Everything (config, state, logs, database) lives under $PHOTOZ_SLURM_DIR
# (default: ${TMPDIR:-/tmp}/photoz-slurm). Clients find the cluster through
# SLURM_CONF=$PHOTOZ_SLURM_DIR/etc/slurm.conf (see `env`) and, where the machine
# has no SLURM config of its own, through a symlink /etc/slurm/slurm.conf to it
# (removed by `stop`): snakemake-executor-plugin-slurm-jobstep clears every
# SLURM_* variable before its `srun` inside a job, so srun must find the config
# at the default place, as on a real cluster. The ports can be moved
# with PHOTOZ_SLURM_PORT_BASE (default 16800: ctld +17, slurmd +18, dbd +19,
# mariadb +6). Installing needs root (Debian: slurm-wlm munge slurmdbd
# mariadb-server); exit status 2 means "cannot run here" (callers skip on it).
set -euo pipefail

D="${PHOTOZ_SLURM_DIR:-${TMPDIR:-/tmp}/photoz-slurm}"
BASE="${PHOTOZ_SLURM_PORT_BASE:-16800}"
CTLD_PORT=$((BASE + 17))
SLURMD_PORT=$((BASE + 18))
DBD_PORT=$((BASE + 19))
DB_PORT=$((BASE + 6))
CLUSTER=photoz
NODE="$(hostname -s)"
ETC="$D/etc"
LOG="$D/log"
RUN="$D/run"
export SLURM_CONF="$ETC/slurm.conf"

die() { echo "cluster.sh: $*" >&2; exit "${2:-1}"; }
say() { echo "cluster.sh: $*"; }

# ---------------------------------------------------------------- installation
need_install() {
    local b
    for b in munged mungekey slurmctld slurmd slurmdbd sbatch sacct sacctmgr mariadbd \
             mariadb-install-db mariadb; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || return 0
    done
    return 1
}

install() {
    export PATH="$PATH:/usr/sbin:/sbin"
    need_install || return 0
    [ "$(id -u)" = 0 ] || die "SLURM/munge/MariaDB are not installed and installing needs root: \
apt-get install slurm-wlm munge slurmdbd mariadb-server" 2
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install slurm-wlm, munge, slurmdbd, mariadb-server by hand" 2
    say "installing slurm-wlm munge slurmdbd mariadb-server (apt-get, quiet)"
    mkdir -p "$D"
    # Debian starts daemons from maintainer scripts where it can: forbid that.
    local rc=/usr/sbin/policy-rc.d own_rc=0
    if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' >"$rc"; chmod +x "$rc"; own_rc=1; fi
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
               slurm-wlm slurm-client munge slurmdbd mariadb-server mariadb-client; } \
           >"$D/apt.log" 2>&1; then
        [ "$own_rc" = 1 ] && rm -f "$rc"
        tail -n 20 "$D/apt.log" >&2
        die "apt-get install failed (log: $D/apt.log)" 2
    fi
    [ "$own_rc" = 1 ] && rm -f "$rc"
    need_install && die "packages installed but a daemon binary is still missing" 2
    return 0
}

# ---------------------------------------------------------------- configuration
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
    mkdir -p "$ETC" "$LOG" "$RUN" "$D/munge" "$D/state/ctld" "$D/state/slurmd" "$D/db"
    chmod 700 "$D/munge"
    local cpus mem
    cpus="$(nproc)"
    # Real memory (MB) minus 1 GB for the system; slurmd drains a node that
    # declares more than it has.
    mem="$(awk '/MemTotal/ {m = int($2 / 1024) - 1024; print (m < 1024 ? 1024 : m)}' /proc/meminfo)"

    cat >"$ETC/slurm.conf" <<EOF
# Written by tools/slurm/cluster.sh: a single-node test cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$D/munge/munge.socket.2
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
# Every job that ends is one line here (the scheduler's own record).
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
# Finished jobs stay visible to squeue/scontrol for 10 minutes.
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=photoz Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF

    # One declared GPU, no device behind it (AutoDetect off: no NVML here).
    cat >"$ETC/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
EOF

    cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket.2
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
    local deadline=$((SECONDS + $1))
    shift 2
    while ((SECONDS < deadline)); do
        if [ "$(type -t "$1")" = function ]; then "$@" >/dev/null 2>&1 && return 0
        else timeout 10 "$@" >/dev/null 2>&1 && return 0; fi
        sleep 0.25
    done
    return 1
}

# ---------------------------------------------------------------- daemons
SYSCONF=/etc/slurm/slurm.conf
link_sysconf() {
    if [ -L "$SYSCONF" ] && [ "$(readlink "$SYSCONF")" = "$SLURM_CONF" ]; then return 0; fi
    [ -e "$SYSCONF" ] && die "$SYSCONF exists: this machine has its own SLURM; not touching it" 2
    mkdir -p "$(dirname "$SYSCONF")"
    ln -s "$SLURM_CONF" "$SYSCONF"
}

unlink_sysconf() {
    if [ -L "$SYSCONF" ] && [ "$(readlink "$SYSCONF")" = "$SLURM_CONF" ]; then rm -f "$SYSCONF"; fi
}

start_munge() {
    pid_alive "$RUN/munged.pid" && return 0
    [ -s "$D/munge/munge.key" ] || mungekey --create --keyfile="$D/munge/munge.key" >/dev/null 2>&1 ||
        { dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none; }
    chmod 600 "$D/munge/munge.key"
    munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket.2" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$D/munge/munged.seed" ||
        { tail -n 5 "$LOG/munged.log" >&2 || true; die "munged did not start" 2; }
    wait_for 10 munge munge -n -S "$D/munge/munge.socket.2" ||
        die "munged does not answer on $D/munge/munge.socket.2" 2
}

db() { mariadb --no-defaults --socket="$D/db/mysqld.sock" -uroot "$@"; }

start_mariadb() {
    if ! pid_alive "$RUN/mariadbd.pid"; then
        if [ ! -d "$D/db/data/mysql" ]; then
            mariadb-install-db --no-defaults --user=root --datadir="$D/db/data" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$LOG/mariadb-install.log" 2>&1 ||
                { tail -n 20 "$LOG/mariadb-install.log" >&2; die "mariadb-install-db failed" 2; }
        fi
        setsid mariadbd --no-defaults --user=root --datadir="$D/db/data" \
            --socket="$D/db/mysqld.sock" --port="$DB_PORT" --bind-address=127.0.0.1 \
            --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadbd.log" \
            --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
            --performance-schema=off </dev/null >/dev/null 2>&1 &
        wait_for 60 mariadb db -e "SELECT 1" ||
            { tail -n 20 "$LOG/mariadbd.log" >&2 || true; die "mariadbd did not start" 2; }
    fi
    db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
           CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
    if ! pid_alive "$RUN/slurmdbd.pid"; then
        slurmdbd || { tail -n 20 "$LOG/slurmdbd.log" >&2 || true; die "slurmdbd did not start" 2; }
    fi
    wait_for 60 slurmdbd sacctmgr -n list cluster ||
        { tail -n 20 "$LOG/slurmdbd.log" >&2 || true; die "slurmdbd does not answer" 2; }
    # The cluster, a second account, and root allowed on both (idempotent).
    sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" ||
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n list account format=account | grep -qw photoz ||
        sacctmgr -i add account photoz Description=photoz-tests Organization=photoz >/dev/null
    sacctmgr -n list assoc user=root format=account | grep -qw photoz ||
        sacctmgr -i add user root Account=photoz >/dev/null
}

start_slurmctld() {
    pid_alive "$RUN/slurmctld.pid" && return 0
    slurmctld || { tail -n 20 "$LOG/slurmctld.log" >&2 || true; die "slurmctld did not start" 2; }
    wait_for 60 slurmctld scontrol ping ||
        { tail -n 20 "$LOG/slurmctld.log" >&2 || true; die "slurmctld does not answer" 2; }
}

start_slurmd() {
    if ! pid_alive "$RUN/slurmd.pid"; then
        slurmd -N "$NODE" || { tail -n 20 "$LOG/slurmd.log" >&2 || true; die "slurmd did not start" 2; }
    fi
    node_up() { sinfo -h -N -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated|completing)'; }
    if ! wait_for 60 node node_up; then
        # A node drained by an earlier run (e.g. killed slurmd) is put back.
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        wait_for 30 node node_up ||
            { sinfo -N -l >&2 || true; tail -n 20 "$LOG/slurmd.log" >&2 || true;
              die "node $NODE is not usable" 2; }
    fi
}

start() {
    install
    export PATH="$PATH:/usr/sbin:/sbin"
    [ "$(id -u)" = 0 ] || die "the test cluster runs its daemons as root (SlurmUser=root)" 2
    write_config
    link_sysconf
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    say "up: cluster $CLUSTER, node $NODE, partitions debug (default) + photoz"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop_one() {  # stop_one NAME: SIGTERM, then wait up to 30 s, then SIGKILL
    local pf="$RUN/$1.pid" pid i
    pid_alive "$pf" || { rm -f "$pf"; return 0; }
    pid="$(cat "$pf")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$pf"
    say "stopped $1"
}

stop() {
    [ -d "$RUN" ] || { say "nothing to stop ($D)"; return 0; }
    # Jobs first, so that no job step outlives the node daemon.
    if pid_alive "$RUN/slurmctld.pid"; then scancel --full --user=root >/dev/null 2>&1 || true; fi
    stop_one slurmd
    stop_one slurmctld
    stop_one slurmdbd
    stop_one mariadbd
    stop_one munged
    unlink_sysconf
}

status() {
    local ok=0 n
    for n in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid_alive "$RUN/$n.pid"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"
        else echo "$n: not running"; ok=1; fi
    done
    if [ "$ok" = 0 ]; then
        sinfo -h -o "partition %P: %a, %D node(s) %T" || ok=1
    fi
    return "$ok"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    purge) stop; rm -rf "$D"; say "removed $D" ;;
    *) echo "usage: $0 start|stop|status|env|purge" >&2; exit 64 ;;
esac
