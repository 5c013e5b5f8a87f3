#!/usr/bin/env bash
# A real single-node Slurm cluster for CI, from Debian's packages: `slurm.sh up DIR` installs
# them when missing, writes DIR/slurm.conf for this machine, starts munged, slurmctld and
# slurmd, and waits until the node is idle; `slurm.sh down DIR` stops the three daemons and
# waits until they are gone. Facts behind each setting: ../shared/notes/slurm.md.
set -euo pipefail

cmd="${1:?usage: slurm.sh up|down DIR}"
dir="${2:?usage: slurm.sh up|down DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

stop_pid() { # a pid file: signal its process once, wait for it to go
  local file="$1" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null || true)"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

down() {
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  stop_pid "$dir/munged.pid"
}

up() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge \
      || { apt-get update -q && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge; }; } \
      >"$dir/apt.log" 2>&1 || { tail -n 20 "$dir/apt.log" >&2; echo "error: cannot install Slurm" >&2; exit 1; }
  fi
  down
  # munge: its key, its run directory, the daemon as the munge user.
  [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null
  # (munged runs as munge, who may not enter DIR: a build folder under root's home, say.)
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged --force --pid-file=/run/munge/munged.pid \
    --socket=/run/munge/munge.socket.2
  cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || true
  munge -n | unmunge >/dev/null

  local host node
  host="$(hostname)"
  node="$(slurmd -C | head -n 1)"
  mkdir -p "$dir/state" "$dir/spool"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=nnlens-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
DependencyParameters=kill_invalid_depend
SchedulerParameters=sched_interval=1,bf_interval=1
MinJobAge=3600
$node NodeAddr=127.0.0.1
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$dir/slurm.conf"
  slurmd -f "$dir/slurm.conf"
  for _ in $(seq 100); do
    if sinfo -h -o '%t' 2>/dev/null | grep -q '^idle' && scontrol show slurmd >/dev/null 2>&1; then
      echo "slurm up: $(sinfo -h -o '%P %D %t %c CPUs')"
      return 0
    fi
    sleep 0.2
  done
  echo "error: the Slurm node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: slurm.sh up|down DIR" >&2; exit 2 ;;
esac
