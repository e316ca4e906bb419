"""Strict: a toy segmentation model with a rule for its input size, for tests/test_input_size.py.
In a module of its own, imported as tests.strict_model, so that run_info.json can hash its file
(utils/provenance.py finds a model's source by its module's name) when a test trains it."""
import torch.nn as nn


class Strict(nn.Module):
    """Takes only heights and widths that are multiples of 32, as an encoder that halves them
    five times does, and fails at once on any other."""
    task = 'seg'
    input_multiple = 32

    def __init__(self, args):
        super().__init__()
        self.conv = nn.Conv2d(3, args.num_classes, 3, padding=1)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes, H, W)
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f'Strict takes multiples of 32, not {tuple(x.shape[-2:])}')
        return self.conv(x)
