"""The SCL network (config, modules, checkpoints). Public API: SCLModel, SCLConfig."""

from sclbench.model.config import TASKS, SCLConfig
from sclbench.model.scl import SCLModel, SCLOutput, VisionFeatures

__all__ = ["SCLConfig", "SCLModel", "SCLOutput", "TASKS", "VisionFeatures"]
