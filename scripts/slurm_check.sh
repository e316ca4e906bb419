#!/usr/bin/env bash
# Runs scripts/train_slurm.sh under a real SLURM: a one-node cluster of this machine from Debian's slurm-wlm and
# munge (apt-get installs them when missing), started as root without systemd, its state in a temporary folder.
# On a copy of the project it submits a run on the CPUs, stops it, resumes it with the printed sbatch command,
# stops that, resumes it to the end, and requeues a second run; every step prints PASS or FAIL.
#   sudo bash scripts/slurm_check.sh   (2 minutes on 2 CPUs; exit 0: all PASS, 1: a FAIL, 77: cannot run here)
# SLURM_CHECK_NO_INSTALL=1: skip (77) instead of installing; SLURM_CHECK_PORT=N: slurmctld's port (slurmd: N+1).
source "$(dirname "$0")/_env.sh"  # the project folder and its Python
ROOT=$PWD
PY=$(command -v "$PY")
if [[ $PY != /* ]]; then PY=$ROOT/$PY; fi  # the jobs run in another folder

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "starting munged, slurmctld and slurmd takes root (sudo bash $0)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  [ -z "${SLURM_CHECK_NO_INSTALL:-}" ] || skip "slurmctld, slurmd or munged is not installed"
  command -v apt-get >/dev/null || skip "slurmctld, slurmd or munged is missing, and there is no apt-get"
  echo "Installing Debian's slurm-wlm and munge with apt-get (once)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
port=${SLURM_CHECK_PORT:-16817}
for p in "$port" $((port + 1)) 29500; do  # slurmctld, slurmd, and the rendezvous of train_slurm.sh
  if (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then skip "port $p is in use (another cluster or run?)"; fi
done

tmp=$(mktemp -d /tmp/torchbase-slurm.XXXXXX)
echo "Cluster state, logs and the project copy: $tmp"
stop_cluster() {
  scancel --quiet --full "$(squeue -h -o %i | tr '\n' ',')" 2>/dev/null || true
  for _ in $(seq 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
  for pid_file in slurmd.pid slurmctld.pid munge/munged.pid; do  # only the daemons started here
    if [ -f "$tmp/$pid_file" ]; then
      pid=$(cat "$tmp/$pid_file")
      kill "$pid" 2>/dev/null || true
      # until it is gone: slurmctld saves its state as it stops, which raced the rm below
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  done
}
passed=
# a failure's files stay for a look; a passed check's leftovers are no failure
trap 'stop_cluster; if [ -n "$passed" ]; then rm -rf "$tmp" || true; fi' EXIT

# The cluster: munge with a key of its own, one node (this host, its CPUs, no GPUs), no cgroups
mkdir -m 700 "$tmp/munge"
mkdir "$tmp/state" "$tmp/spool"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
munged --force --key-file "$tmp/munge/munge.key" --socket "$tmp/munge/socket" --pid-file "$tmp/munge/munged.pid" \
  --log-file "$tmp/munge/munged.log" --seed-file "$tmp/munge/seed"
host=$(hostname -s)
cat >"$tmp/slurm.conf" <<EOF
ClusterName=torchbase_check
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
# no cgroups without systemd: processes are tracked through /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 30); do [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break; sleep 1; done
if [ "$(sinfo -h -o %t 2>/dev/null)" != idle ]; then
  tail -n 5 "$tmp"/*.log
  skip "the one-node cluster did not start (its logs are above)"
fi
echo "A one-node cluster is up: $(sinfo -h -o '%N, %c CPUs, partition %P')"

# A copy of the project in a git checkout of its own: the runs' provenance says whether the job logs left it clean
mkdir "$tmp/project"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -f "$f" ]; then cp --parents "$f" "$tmp/project"; fi
done
cd "$tmp/project"
git init -q
git add -A
git -c user.name=slurm_check -c user.email=check@localhost commit -qm "the project as slurm_check.sh found it"
"$PY" -m data.make_shapes --out "$tmp/shapes" --n_train 200 --n_val 20 --size 32 >/dev/null
export PATH=$(dirname "$PY"):$PATH  # the python of the jobs
EPOCHS=6
cpus=$(($(nproc) < 2 ? $(nproc) : 2))
flags=(--train_list "$tmp/shapes/train.txt" --val_list "$tmp/shapes/val.txt" --epochs "$EPOCHS" --batch_size 2)
submit=(sbatch --parsable --nodes 1 --cpus-per-task "$cpus" --time 10 scripts/train_slurm.sh)

failed=0
check() {  # check WHAT COMMAND...: PASS or FAIL, and on to the next check either way
  if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; failed=1; fi
}
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds; fails after SECONDS
  local end=$((SECONDS + $1))
  until "${@:2}"; do
    if [ $SECONDS -ge $end ]; then return 1; fi
    sleep 0.5
  done
}
state() { scontrol show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
comment() { scontrol show job "$1" | sed -n 's/^ *Comment=\(.*[^ ]\) *$/\1/p'; }
is() { [ "$(state "$1")" = "$2" ]; }
ended() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }  # squeue lists pending, running and completing jobs
status_of() {  # status_of RUN KEY: a field of the run's status.json
  local read='import json, sys; print(json.load(open(sys.argv[1] + "/status.json"))[sys.argv[2]])'
  "$PY" -c "$read" "$1" "$2" 2>/dev/null
}
done_at_least() { [ "$(status_of "$1" epochs_done)" -ge "$2" ] 2>/dev/null; }
epochs_once() {  # each epoch in the run's log once: a resume went on where the stop left it, nothing twice
  for e in $(seq "$EPOCHS"); do [ "$(grep -c " epoch $e/$EPOCHS " "$1/train.log")" = 1 ] || return 1; done
}
no_traceback() { [ -f "checkpoints/slurm-$1.out" ] && ! grep -q Traceback "checkpoints/slurm-$1.out"; }
need_job() {  # the steps below go on with this job
  if [ -z "$job" ]; then echo "FAILED: no job to go on with; see $tmp/project"; exit 1; fi
}
resume_line() { tail -n 1 "checkpoints/slurm-$1.out" | sed 's/^  //'; }  # what the log ends with after a stop
prints_resume() { resume_line "$1" | grep -q "sbatch .*scripts/train_slurm.sh --resume $2\$"; }
resubmit() {  # runs the command a stopped job's log ends with, as a user pastes it; prints the new job's id
  local command
  command=$(resume_line "$1")
  case $command in "cd "*" && sbatch "*) bash -c "$command" | grep -o '[0-9]*$' ;; esac
}

run=checkpoints/base_exp
echo "1. A new run on $cpus CPUs, cancelled (scancel) after its first epoch"
job=$("${submit[@]}" "${flags[@]}") || true
check "sbatch takes the job on a cluster without GPUs (job $job)" test -n "$job"
need_job
check "it trains" wait_for 120 done_at_least "$run" 1
check "one process per CPU given: --nproc_per_node $cpus" \
  grep -q -- "--nproc_per_node $cpus train.py" "$run/command.txt"
scancel "$job"
check "the job ends" wait_for 60 ended "$job"
check "it is CANCELLED" is "$job" CANCELLED
check "the run is stopped, with its last.pth" test "$(status_of "$run" status)" = stopped -a -f "$run/last.pth"
check "its log, checkpoints/slurm-$job.out, ends with the sbatch resume command" prints_resume "$job" "$run"
check "no traceback in the log" no_traceback "$job"
stopped_at=$(status_of "$run" epochs_done) || stopped_at=0

echo "2. Resumed with that command, then sent SIGTERM as --signal does before the time limit (scancel --signal)"
job=$(resubmit "$job") || true
check "the printed command submits a job ($job)" test -n "$job"
need_job
check "it goes on" wait_for 120 done_at_least "$run" $((stopped_at + 1))
scancel --signal=TERM "$job"
check "the job ends" wait_for 60 ended "$job"
check "it is COMPLETED" is "$job" COMPLETED
check "with the comment 'stopped, resumable: <the command>'" \
  test "$(comment "$job")" = "stopped, resumable: $(resume_line "$job")"
check "the run is stopped; the log ends with the resume command" prints_resume "$job" "$run"
check "no traceback in the log" no_traceback "$job"

echo "3. Resumed again, to the end"
job=$(resubmit "$job") || true
check "the printed command submits a job ($job)" test -n "$job"
need_job
check "the job ends" wait_for 180 ended "$job"
check "it is COMPLETED" is "$job" COMPLETED
check "the run finished all $EPOCHS epochs" \
  test "$(status_of "$run" status) $(status_of "$run" epochs_done)" = "finished $EPOCHS"
check "each epoch once in its train.log: both resumes went on from the saved step" epochs_once "$run"
check "no traceback in the log" no_traceback "$job"

run=checkpoints/base_exp_2
echo "4. A new run, requeued (scontrol requeue, as after a node failure) after its first epoch"
job=$("${submit[@]}" "${flags[@]}") || true
need_job
check "it trains (job $job)" wait_for 120 done_at_least "$run" 1
scontrol requeue "$job" || true
check "the job is requeued" wait_for 60 is "$job" PENDING
scontrol update JobId="$job" StartTime=now || true  # instead of SLURM's two minutes' wait
check "the job ends" wait_for 180 ended "$job"
check "it is COMPLETED" is "$job" COMPLETED
check "the requeued job resumed its own run folder, which finished" test "$(status_of "$run" status)" = finished
check "no other run folder" test ! -e checkpoints/base_exp_3
check "each epoch once in its train.log" epochs_once "$run"
check "the job log holds both tries" grep -q "Requeued (restart 1): resuming $run" "checkpoints/slurm-$job.out"
check "no traceback in the log" no_traceback "$job"

echo "5. The project copy"
check "the job logs left it clean: git status shows nothing" test -z "$(git status --porcelain)"
check "so the runs' provenance is clean too" grep -q '"dirty": false' "$run/run_info.json"
if [ "$failed" -ne 0 ]; then echo "FAILED: see the job logs in $tmp/project/checkpoints"; exit 1; fi
echo "All PASS"
passed=1
