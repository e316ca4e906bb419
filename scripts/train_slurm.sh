#!/usr/bin/env bash
#SBATCH --job-name=torchbase
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1        # one torchrun per node; it starts that node's processes
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120          # SIGTERM 2 minutes before the time limit: the run saves a resumable last.pth
#SBATCH --output=checkpoints/slurm-%j.out  # git-ignored: a log in the project would make every run 'dirty'
#SBATCH --open-mode=append         # a requeued job adds to its log instead of overwriting the first try's
# GPUs: sbatch --gpus-per-node=4 scripts/train_slurm.sh ... (or such a line above; a cluster without GPUs refuses
# it). Each node runs one process per GPU the job got, else one per CPU (gloo); NPROC=n sbatch ... sets the count.
# SLURM: sbatch scripts/train_slurm.sh [train.py flags], from the project folder, in the environment that has its
# requirements. Each node runs torchrun through srun; they meet at a c10d rendezvous on the job's first node.
# The project folder (with checkpoints/) must be on a filesystem every node sees.
# A stop (scancel, the --signal above, preemption) saves last.pth; the log ends with the sbatch command that
# resumes the run, which is also the job's Comment (squeue -o %k, scontrol show job; a job that scancel ended
# stays CANCELLED). A requeued job (scontrol requeue, a failed node) resumes its own run folder.
# scripts/slurm_check.sh runs this on a one-node cluster of Debian's slurm-wlm: submit, stop, resume, requeue.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# torchrun gives its processes this long to save after SIGTERM before it kills them: less than TERM@120 above.
# scancel and requeue kill the job KillWait seconds (scontrol show config; 30 by default) after their SIGTERM.
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=110
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
cpus=${SLURM_CPUS_PER_TASK:-$SLURM_CPUS_ON_NODE}
gpus=${SLURM_GPUS_ON_NODE:-0}
if [ "$gpus" -gt 0 ]; then nproc=${NPROC:-$gpus}; else nproc=${NPROC:-$cpus}; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((cpus / nproc > 1 ? cpus / nproc : 1))}  # the CPUs, shared out

# The command that submits this job again, with the resources it got (from the lines above or the sbatch command
# line): a stopped run prints it with --resume (utils/run_status.py), so that it goes on under SLURM
job=$(scontrol show job "$SLURM_JOB_ID")
field() { grep -o " $1=[^ ]*" <<<"$job" | head -n 1 | cut -d= -f2-; }
script=$(field Command)
script=${script#"$PWD"/}  # relative to the project folder, as it was submitted
sbatch=(sbatch --nodes "$SLURM_JOB_NUM_NODES" --cpus-per-task "$cpus" --time "$(field TimeLimit)"
        --partition "$SLURM_JOB_PARTITION")
if [ "$gpus" -gt 0 ]; then sbatch+=(--gpus-per-node "$gpus"); fi
export TORCHBASE_SBATCH="cd $(printf %q "$PWD") && ${NPROC:+NPROC=$NPROC }${sbatch[*]} $(printf %q "$script")"

# This job's run folder: the one --resume names, else the one whose status.json records the job id
checkpoints=checkpoints resume= prev=
for arg in "$@"; do  # train.py's --checkpoints_dir and --resume, if given
  case $prev in --checkpoints_dir) checkpoints=$arg ;; --resume) resume=$arg ;; esac
  case $arg in --checkpoints_dir=*) checkpoints=${arg#*=} ;; --resume=*) resume=${arg#*=} ;; esac
  prev=$arg
done
job_run() {
  if [ -n "$resume" ]; then echo "$resume"; return; fi
  python -c 'import sys; from utils.run_status import slurm_run; print(slurm_run(*sys.argv[1:]) or "")' \
    "$checkpoints" "$SLURM_JOB_ID"
}
status_is() { grep -q "\"status\": \"$2\"" "$1/status.json"; }

# Requeued (scontrol requeue, a failed node): the run that an earlier try started goes on (with --resume given,
# the same flags do that already)
run=$(if [ -z "$resume" ] && [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then job_run; fi)
if [ -n "$run" ]; then
  if status_is "$run" finished; then echo "Requeued, but $run has finished already"; exit 0; fi
  echo "Requeued (restart $SLURM_RESTART_COUNT): resuming $run"
  scontrol update JobId="$SLURM_JOB_ID" Comment="requeued: resumes $run" || true
  set -- --resume "$run"  # all its flags come from its last.pth
fi

# scancel and requeue send SIGTERM to this script too: wait for srun (a trap runs once it ends), then explain
trap 'echo "SIGTERM: waiting for the training processes to save last.pth"' TERM
rc=0
# scripts/torchrun.py: torchrun, except that a stop signal ends it with 128 + the signal instead of a traceback (its
# processes have saved last.pth and said so; what to do next is said below), and a failed process with one line.
# --cpus-per-task again: srun of slurm 22.05 does not take it from sbatch, and would bind torchrun to one CPU
srun --cpus-per-task "$cpus" python scripts/torchrun.py --nnodes "$SLURM_NNODES" --nproc_per_node "$nproc" \
  --rdzv_backend c10d --rdzv_endpoint "$head_node:29500" --rdzv_id "$SLURM_JOB_ID" \
  train.py "$@" || rc=$?

run=$(if [ "$rc" -ne 0 ]; then job_run; fi)
if [ -n "$run" ] && status_is "$run" finished; then  # the signal came as the last epoch ended
  echo "$run has finished all its epochs"
  exit 0
fi
if [ -n "$run" ] && status_is "$run" stopped; then
  resume="$TORCHBASE_SBATCH --resume $(printf %q "$run")"
  echo "Stopped, resumable: $run/last.pth is saved (a requeued job resumes it by itself). Resume with:"
  echo "  $resume"
  # COMPLETED with this comment; after scancel the job is CANCELLED already and keeps no comment
  scontrol update JobId="$SLURM_JOB_ID" Comment="stopped, resumable: $resume" 2>/dev/null || true
  exit 0
fi
exit "$rc"
