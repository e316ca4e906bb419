"""The third task's loss. tests/test_new_task.py inserts the class (from `class` on) into loss.py
above type2loss, and registers it there as 'mse'."""
import torch.nn as nn


class MSELoss(nn.Module):
    """Mean squared error of one number per image: pred and gt (B,) floats. Targets equal to
    --ignore_index do not count, as in the other losses."""

    def __init__(self, ignore_index):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred, gt):
        counted = gt != self.ignore_index  # (B,) bool
        return ((pred - gt) ** 2 * counted).sum() / counted.sum().clamp(min=1)
