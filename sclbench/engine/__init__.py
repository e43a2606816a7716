"""Training engine: official optimizer groups and schedule, torchrun-ready trainer, exact resume.

    from sclbench.engine import Trainer, TrainConfig, StepContext
    summary = Trainer(model, loss_fn, train_dataset, collate_fn, TrainConfig(...), evaluate_fn).fit()

See trainer.py for how objectives plug in, distributed.py for the torchrun command lines.
"""

from sclbench.engine.checkpointing import TrainState, latest
from sclbench.engine.optim import build_optimizer, param_groups
from sclbench.engine.sampler import SeededDataset, ShardedEvalSampler, TrainSampler, gather_in_order, reassemble
from sclbench.engine.schedule import build_scheduler, lr_multiplier, total_steps
from sclbench.engine.trainer import LossModule, StepContext, TrainConfig, Trainer

__all__ = [
    "LossModule",
    "SeededDataset",
    "ShardedEvalSampler",
    "StepContext",
    "TrainConfig",
    "TrainSampler",
    "TrainState",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "gather_in_order",
    "latest",
    "lr_multiplier",
    "param_groups",
    "reassemble",
    "total_steps",
]
