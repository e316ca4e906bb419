#!/usr/bin/env bash
#SBATCH --job-name=torchbase
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1        # one torchrun per node; it starts that node's processes
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120          # SIGTERM 2 minutes before the time limit: the run saves a resumable last.pth
#SBATCH --output=slurm-%j.out
# SLURM: sbatch scripts/train_slurm.sh [train.py flags], from the project folder, in the environment that has its
# requirements. Each node runs torchrun through srun; they meet at a c10d rendezvous on the job's first node.
# The project folder (with checkpoints/) must be on a filesystem every node sees. Resume a stopped or timed-out
# run by submitting again with --resume checkpoints/<run>.
# NOTE: written for SLURM but not run here: the project is developed without a SLURM cluster. What it launches,
# torchrun with --nnodes and a c10d rendezvous, is tested on one machine (tests/test_ddp.py, loopback "nodes").
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# torchrun gives its processes this long to save after SIGTERM before it kills them: less than TERM@120 above
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=110
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
gpus_per_node=${SLURM_GPUS_ON_NODE:-4}
srun python -m torch.distributed.run --nnodes "$SLURM_NNODES" --nproc_per_node "$gpus_per_node" \
  --rdzv_backend c10d --rdzv_endpoint "$head_node:29500" --rdzv_id "$SLURM_JOB_ID" \
  train.py "$@"
