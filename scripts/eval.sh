#!/usr/bin/env bash
# Evaluate a checkpoint. Results go beside it: <checkpoint without .pth>/<list folder>_<list name>_<save_prefix>/
cd "$(dirname "$0")/.." || exit 1
args=(
  --load_model_path "${CKPT:-checkpoints/$(cat checkpoints/latest)/best.pth}"  # CKPT=... bash scripts/eval.sh
  --val_list demo_data/shapes/val.txt   # the list to evaluate
  --save_prefix test                    # names the result folder
  --save_viz --viz_freq 20              # an input | prediction | truth picture every 20 samples
  # --model_type and the other model flags come from the checkpoint unless given here
)
python eval.py "${args[@]}" "$@"
