#!/usr/bin/env bash
# Evaluate a checkpoint: best.pth of the newest run, or the one named by CKPT (CKPT=path/to.pth bash scripts/eval.sh).
# Results go beside it: <checkpoint without .pth>/<list folder>_<list name>_<save_prefix>/
source "$(dirname "$0")/_env.sh"  # the project folder and its Python, as in demo.sh
install_missing requirements.txt
args=(
  --save_prefix test                    # names the result folder
  --save_viz --viz_freq 20              # the task's picture of every 20th sample
  # --val_list data/my_test.txt         # the list to evaluate; default: the list the run validated on
  # --model_type, --num_classes, ...    # default: the checkpoint's (MODEL_ARGS, DATA_ARGS, RUN_ARGS
                                        # in options.py)
)
if [ -n "${CKPT:-}" ]; then
  args+=(--load_model_path "$CKPT")
fi
"$PY" eval.py "${args[@]}" "$@"
