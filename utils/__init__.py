"""Reusable helpers: logging (logger.py), checkpoint files (checkpoint.py), run folders (run_dir.py),
model loading and devices (torch_utils.py), pictures (viz.py), user-facing errors (errors.py)."""
