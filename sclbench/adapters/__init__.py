"""Any model through sclbench's protocols: the per-family interface, and adapters implementing it."""

from sclbench.adapters.interface import (
    FAMILIES,
    EvalModel,
    NLVR2Batch,
    NLVR2Model,
    Preprocess,
    RetrievalModel,
    VQABatch,
    VQAModel,
    supports,
)

__all__ = [
    "FAMILIES",
    "EvalModel",
    "NLVR2Batch",
    "NLVR2Model",
    "Preprocess",
    "RetrievalModel",
    "VQABatch",
    "VQAModel",
    "supports",
]
