#!/usr/bin/env bash
# Quick start: train the base model on the demo task (its data is made on first use), then evaluate it.
# Extra flags go to train.py, e.g. bash scripts/demo.sh --model_type better
source "$(dirname "$0")/_env.sh"
install_missing requirements.txt torch torchvision tensorboard numpy PIL cv2 tqdm

"$PY" train.py --save_prefix demo "$@"
"$PY" eval.py --save_prefix demo --save_viz  # evaluates best.pth of the run just made

run=checkpoints/$(cat checkpoints/latest)
echo
echo "Metrics:  $run/best/shapes_val_demo/result.txt"
echo "Pictures: $run/best/shapes_val_demo/viz/"
echo "Curves:   tensorboard --logdir checkpoints   (then open http://localhost:6006)"
