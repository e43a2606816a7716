"""Data shipped inside the package: the task cards (`tasks/*.yaml`) and the checkpoint registry
(`checkpoints.yaml`). Read through `importlib.resources`, so an installed wheel finds them; the
repository's top-level `tasks/` and `checkpoints.yaml` are links to these files (one copy)."""
