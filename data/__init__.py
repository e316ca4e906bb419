"""Datasets (one per file), their shared augmentations (augment.py) and the registry that picks one
by --data_type (data_entry.py). make_shapes.py writes the demo dataset."""
