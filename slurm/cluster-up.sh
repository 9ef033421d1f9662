#!/usr/bin/env bash
# Make a one-node Slurm cluster answer on this host, for the Slurm executor and its tests:
# installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server where they are missing (root, apt),
# writes slurm.conf and slurmdbd.conf for this host, starts munged, mariadbd, slurmdbd, slurmctld
# and slurmd where they are not running, and waits until the node takes jobs and sacct answers.
# Idempotent; daemons already running are left alone (a changed slurm.conf is applied with
# `scontrol reconfigure`).
#
# Why slurmdbd and a database for one node: sacct (the state and exit code of an ended job, which
# the executor records as the cell's reason) reads only the accounting database; with
# accounting_storage/none it answers nothing, and Slurm 22.05 has no file-based accounting left.
# Why no cgroups: this runs in containers without a writable cgroup tree, so processes are tracked
# through /proc (proctrack/linuxproc) and each cell's memory is limited by the runner's own guard.
set -euo pipefail
say() { echo "cluster-up: $*" >&2; }
host=$(hostname -s)
conf=/etc/slurm
log=/var/log/slurm
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
command -v slurmdbd >/dev/null || need+=(slurmdbd)
command -v mariadbd >/dev/null || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then say "need root to apt-get install ${need[*]}"; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

ready() { sinfo -h -n "$host" -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' && sacct -n -X -S now >/dev/null 2>&1; }

write_if_changed() {  # path mode content: rewrite only when the content differs; exit status 0 when it did
  local path=$1 mode=$2 content=$3
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then return 1; fi
  printf '%s\n' "$content" >"$path.new" && chmod "$mode" "$path.new" && mv "$path.new" "$path"
}

if [ "$(id -u)" != 0 ]; then
  ready && { say "Slurm answers on $host"; exit 0; }
  say "Slurm does not answer on $host and starting its daemons needs root"; exit 1
fi
mkdir -p "$conf" "$log" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/munge /run/mysqld
chown munge:munge /run/munge && chown mysql:mysql /run/mysqld

# Memory Slurm may hand out: the host's, less 1 GB for the daemons and the submitting runner.
memory_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
changed=0
write_if_changed "$conf/slurm.conf" 644 "# Written by slurm/cluster-up.sh for a one-node test cluster on $host.
ClusterName=dlmatrix
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# A job past its time limit gets SIGTERM, then SIGKILL after KillWait seconds (default 30).
KillWait=5
MinJobAge=300
NodeName=$host CPUs=2 RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP" && changed=1
write_if_changed "$conf/slurmdbd.conf" 600 "# Written by slurm/cluster-up.sh: the accounting daemon sacct reads through.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$log/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=dlmatrix
StorageLoc=slurm_acct_db" || true

wait_for() {  # what seconds command...: poll until the command succeeds
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  say "$what did not answer in $seconds s"; return 1
}

[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
pidof munged >/dev/null || runuser -u munge -- /usr/sbin/munged
wait_for munged 20 munge -n

if ! pidof mariadbd >/dev/null; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  nohup mariadbd --user=mysql >"$log/mariadbd.log" 2>&1 &
fi
wait_for mariadbd 60 mariadb-admin ping
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'dlmatrix';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

pidof slurmdbd >/dev/null || slurmdbd
wait_for slurmdbd 60 sacctmgr -n show cluster
sacctmgr -n -P show cluster format=cluster | grep -qx dlmatrix || sacctmgr -i add cluster dlmatrix >/dev/null

if pidof slurmctld >/dev/null; then
  [ $changed = 0 ] || scontrol reconfigure
else
  slurmctld
fi
pidof slurmd >/dev/null || slurmd
wait_for slurmctld 60 scontrol ping
# A node that was down when slurmctld last saw it (this host restarted) is taken back into service.
if sinfo -h -n "$host" -o %T | grep -Eq '^(down|drain)'; then scontrol update nodename="$host" state=resume; fi
wait_for "the node $host" 60 ready || { tail -5 "$log/slurmctld.log" "$log/slurmd.log" >&2; exit 1; }
say "Slurm $(sinfo -V | cut -d' ' -f2) answers on $host: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
