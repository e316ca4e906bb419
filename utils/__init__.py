"""The mechanisms around a run; a new task edits none of them (see task/task_entry.py).

Worth reading:
  logger.py      Recorder (means over an epoch) and Logger (TensorBoard, checkpoint files)
  checkpoint.py  checkpoint files: atomic writes, checksums, safe loading
  weights.py     loading saved weights: strict, or partial (load_match_dict)
  key_map.py     pretrained weights into a sub-module: --load_into, --load_prefix
  optim.py       optimizers, learning rate schedules, --amp, --ema
  viz.py         pictures of predictions
  errors.py      ConfigError: one clear line instead of a traceback
  torch_utils.py seeding, the device, the model summary

Skip unless you scale, stop or resume runs:
  dist.py (torchrun DDP), stop.py (SIGTERM, Ctrl-C), resume.py and train_state.py (what a
  checkpoint holds and how a run goes on), prepare.py, run_dir.py, run_status.py, runs.py,
  folder_lock.py (run folders and their state), checks.py (flag and input checks before a run),
  provenance.py (commit and source hashes), profile.py (--profile).
"""
