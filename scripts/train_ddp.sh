#!/usr/bin/env bash
# DDP training through torchrun: one process per GPU (NCCL), or per CPU worker (gloo) on a machine without GPUs.
#   One machine:   NPROC=4 bash scripts/train_ddp.sh [train.py flags]
#   Many machines: the same command on each, with the same RDZV (the first machine's address and a free port there)
#                  and JOB id; torchrun assigns the node ranks itself:
#                  NNODES=2 NPROC=4 RDZV=node1:29500 JOB=exp42 bash scripts/train_ddp.sh [train.py flags]
# --batch_size is per process: each step trains on NNODES x NPROC x --batch_size samples (README, "Scaling up").
# Rank 0 writes the run folder on its machine: checkpoints and --resume across machines need a shared filesystem.
# Resume a stopped run with the same launch: ... bash scripts/train_ddp.sh --resume checkpoints/<run>
# After SIGTERM or Ctrl-C, torchrun waits TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (default 30) for the processes
# to save before it kills them; they stop at the next --print_freq step, or after validation: give them time.
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-110}
source "$(dirname "$0")/_env.sh"  # the project folder and its Python, as in demo.sh
install_missing requirements.txt
NPROC=${NPROC:-$("$PY" -c 'import torch; print(torch.cuda.device_count() or 2)')}  # no GPU: 2 CPU processes
if [ "${NNODES:-1}" -gt 1 ]; then
  launch=(--nnodes "$NNODES" --rdzv_backend c10d --rdzv_endpoint "${RDZV:?set RDZV=host:port of the first machine}"
          --rdzv_id "${JOB:-torchbase}")
else
  launch=(--standalone)  # a rendezvous on this machine, on a free port
fi
# torchrun, less its traceback after a stop or a process's one-line error (scripts/torchrun.py); exec, so that a
# SIGTERM to this script reaches torchrun, which passes it on to the processes
exec "$PY" scripts/torchrun.py "${launch[@]}" --nproc_per_node "$NPROC" train.py "$@"
