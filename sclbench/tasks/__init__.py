"""Task adapters, one per benchmark family, registered by family name (see base.py)."""

from sclbench.tasks import nlvr2, pretrain, retrieval, video_retrieval, vqa  # noqa: F401  (register themselves)
from sclbench.tasks.base import Evaluation, Task, get_task, list_tasks, register

__all__ = ["Evaluation", "Task", "get_task", "list_tasks", "register"]
