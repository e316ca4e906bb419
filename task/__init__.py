"""Tasks: what one kind of problem changes in training and evaluation (see task_entry.py)."""
