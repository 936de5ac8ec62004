"""The task names every layer shares: what a model does, and the tasks a chip is scored on."""

from typing import Literal, get_args

__all__ = ["SCORED_TASKS", "TASKS", "ScoredTask", "Task"]

Task = Literal["classification", "segmentation", "generation", "discrimination"]
"""What a model does; decides its data, loss and metric."""

ScoredTask = Literal["classification", "segmentation"]
"""A task with labels to score a chip against: accuracy in %, or mean IoU in %."""

TASKS: tuple[Task, ...] = get_args(Task)
SCORED_TASKS: tuple[ScoredTask, ...] = get_args(ScoredTask)
