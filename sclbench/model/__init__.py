"""The SCL network (config, modules, checkpoints). Public API: SCLModel, SCLConfig."""

from sclbench.model import factory  # noqa: F401,E402  (installs the loaders behind SCLModel.from_*)
from sclbench.model.config import MODEL_TASKS, SCLConfig
from sclbench.model.scl import SCLModel, SCLOutput, VisionFeatures

__all__ = ["MODEL_TASKS", "SCLConfig", "SCLModel", "SCLOutput", "VisionFeatures"]
