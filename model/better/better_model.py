"""BetterModel: the U-Net of `base` with residual blocks and 1.5x the channels."""
import torch.nn as nn

from model.submodules import Decoder, Encoder, ResBlock


class BetterModel(nn.Module):
    task = 'seg'  # a class score per pixel (task/task_entry.py)

    def __init__(self, args):
        super().__init__()
        widths = (24, 48, 96, 96)
        self.encoder = Encoder(3, widths, ResBlock)
        self.decoder = Decoder(widths, ResBlock)
        self.head = nn.Conv2d(widths[0], args.num_classes, 1)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes, H, W) logits
        return self.head(self.decoder(self.encoder(x)))
