"""Reusable helpers: TensorBoard curves and checkpoints (logger.py), run folders and their log file
(run_dir.py), checkpoint files (checkpoint.py), model loading and devices (torch_utils.py), pictures (viz.py),
user-facing errors (errors.py)."""
