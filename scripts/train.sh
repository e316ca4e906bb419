#!/usr/bin/env bash
# A training run with every commonly changed flag spelled out. Copy it per experiment and edit the values:
# the script then documents the experiment, and the run folder keeps args.json and command.txt too.
source "$(dirname "$0")/_env.sh"  # the project folder and its Python, as in demo.sh
install_missing requirements.txt
args=(
  --task seg                                # seg or cls: a key of type2task in task/task_entry.py
  --model_type base                         # a key of type2model in model/model_entry.py
  --data_type list                          # a key of type2data in data/data_entry.py
  --train_list demo_data/shapes/train.txt   # lines of `image_path label_path`
  --val_list demo_data/shapes/val.txt
  --save_prefix lr3e-3_bs8                  # names the run folder: checkpoints/base_lr3e-3_bs8/
  --epochs 10
  --batch_size 8
  --lr 3e-3                                 # Adam, betas (--momentum, --beta)
  --loss ce                                 # ce, dice or focal (loss.py)
  --monitor val/mIoU --monitor_mode max     # decides best.pth
  --num_workers 0                           # loader processes; more when images are large or slow to decode
  # --gpus 0 1                              # DataParallel over GPUs 0 and 1
  # --load_model_path checkpoints/base_exp/best.pth --load_not_strict   # start from matching weights
)
"$PY" train.py "${args[@]}" "$@"
