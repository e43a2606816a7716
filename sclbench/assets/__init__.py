"""Data shipped inside the package: the task cards (`tasks/*.yaml`) and the checkpoint registry
(`checkpoints.yaml`). Read through `importlib.resources`, so an installed wheel finds them; the
repository's top-level `tasks/` and `checkpoints.yaml` are links to these files (one copy)."""

from importlib import resources
from pathlib import Path


def packaged_cards_dir() -> Path:
    """The cards shipped inside the package (`sclbench/assets/tasks`, found through importlib.resources)."""
    return Path(str(resources.files("sclbench.assets") / "tasks"))
