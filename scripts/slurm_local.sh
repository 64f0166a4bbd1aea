#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying the Slurm path (and for CI's Slurm tests).
#   sudo scripts/slurm_local.sh start    # munged + slurmctld + slurmd; returns when `sinfo` shows the node idle
#   sudo scripts/slurm_local.sh stop     # stops the daemons this script started
#   scripts/slurm_local.sh status
# Needs Debian's packages (installs nothing itself): sudo apt-get install slurm-wlm munge
# Writes /etc/slurm/slurm.conf (the machine's hostname, CPUs and memory from `slurmd -C`; no cgroups:
# proctrack/linuxproc, task/none; no accounting) unless a slurm.conf not written by this script is there,
# in which case it refuses: a real cluster's configuration is never overwritten. Runs the daemons as root.
set -euo pipefail

CONF_DIR=${SLURM_LOCAL_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
STATE=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
MARK="# written by grounding scripts/slurm_local.sh"
WAIT_S=${SLURM_LOCAL_WAIT_S:-90}

die() { echo "slurm_local: $*" >&2; exit 1; }

need() {
  for b in munged slurmctld slurmd sinfo scontrol; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found: install Debian's packages first (apt-get install slurm-wlm munge)"
  done
  [ "$(id -u)" -eq 0 ] || die "run as root (the daemons need it): sudo $0 $*"
}

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to overwrite a real cluster's configuration"
  fi
  local host node
  host=$(hostname -s)
  # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  node=$(slurmd -C | head -n 1)
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat > "$CONF" <<EOF
$MARK ($(date -u +%FT%TZ)); \`scripts/slurm_local.sh stop\` leaves it in place
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  echo "slurm_local: wrote $CONF ($node)"
}

start_munge() {
  if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  local i
  for i in $(seq 1 50); do munge -n </dev/null >/dev/null 2>&1 && return; sleep 0.2; done
  die "munged did not come up"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  need start
  write_conf
  start_munge
  running "$STATE/slurmctld.pid" || slurmctld
  running "$STATE/slurmd.pid" || slurmd
  local t0=$SECONDS state=""
  while [ $((SECONDS - t0)) -lt "$WAIT_S" ]; do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
    if [ "$state" = idle ] || [ "$state" = mix ] || [ "$state" = alloc ]; then
      echo "slurm_local: node $(hostname -s) $state (slurmctld pid $(cat "$STATE/slurmctld.pid"), slurmd pid $(cat "$STATE/slurmd.pid"))"
      sinfo
      return 0
    fi
    if [ "$state" = down ] || [ "$state" = drain ]; then scontrol update nodename="$(hostname -s)" state=resume || true; fi
    sleep 1
  done
  tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  die "the node did not become idle within ${WAIT_S}s (state: '${state:-no answer}'); logs above"
}

stop_pid() {  # stop_pid NAME PIDFILE: TERM, wait up to 15 s, then KILL
  local pid i
  [ -f "$2" ] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for i in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "slurm_local: stopped $1 (pid $pid)"
  fi
  rm -f "$2"
}

stop() {
  [ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 stop"
  if command -v scancel >/dev/null 2>&1 && [ -f "$STATE/slurmctld.pid" ]; then
    timeout 10 scancel --user=root --quiet 2>/dev/null || true   # this cluster's jobs only
  fi
  stop_pid slurmd "$STATE/slurmd.pid"
  stop_pid slurmctld "$STATE/slurmctld.pid"
  stop_pid munged /run/munge/munged.pid
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
