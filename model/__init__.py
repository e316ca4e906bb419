"""Models: one package per variant (base, better, best, sota), shared blocks in submodules.py,
and the registry that builds the one named by --model_type (model_entry.py)."""
