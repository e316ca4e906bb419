"""BaseModel: a small U-Net (three downsamplings, DoubleConv blocks, skip connections).
Small enough to train on a laptop CPU in about a minute on the demo task."""
import torch.nn as nn

from model.submodules import Decoder, DoubleConv, Encoder


class BaseModel(nn.Module):
    task = 'seg'  # a class score per pixel (task/task_entry.py)

    def __init__(self, args):
        super().__init__()
        # EDIT ME: channels per level; one more level halves the size once more
        widths = (16, 32, 64, 64)
        self.encoder = Encoder(3, widths, DoubleConv)
        self.decoder = Decoder(widths, DoubleConv)
        self.head = nn.Conv2d(widths[0], args.num_classes, 1)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes, H, W) logits
        return self.head(self.decoder(self.encoder(x)))
