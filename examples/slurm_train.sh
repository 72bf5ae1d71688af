#!/bin/bash
# SSL Workbench: simclr on data/images/train, 2 nodes x 4 GPUs.
# Submit from the project folder (on a file system every node sees): sbatch THIS_FILE
# Only the main process writes the run folder; continue a stopped run with
#   ... main.py train --resume runs/<run folder>   (any number of nodes or GPUs).
#SBATCH --job-name=sslwb-simclr
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# activate the Python environment that has SSL Workbench's dependencies here, e.g.
# source .venv/bin/activate
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=4
srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 4 --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$HEAD_NODE:29500" main.py train --method simclr --data data/images/train --eval-data data/images/val --epochs 100 --device cuda
