"""BestModel: a residual U-Net twice as wide as `base`, whose coarsest features pass through a
ContextBlock (dilated convolutions and global pooling), so each pixel's class can use the whole
shape around it."""
import torch.nn as nn

from model.submodules import ContextBlock, Decoder, Encoder, ResBlock


class BestModel(nn.Module):
    task = 'seg'  # a class score per pixel (task/task_entry.py)

    def __init__(self, args):
        super().__init__()
        widths = (32, 64, 128, 128)
        self.encoder = Encoder(3, widths, ResBlock)
        self.context = ContextBlock(widths[-1])
        self.decoder = Decoder(widths, ResBlock)
        self.head = nn.Conv2d(widths[0], args.num_classes, 1)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes, H, W) logits
        feats = self.encoder(x)
        feats[-1] = self.context(feats[-1])
        return self.head(self.decoder(feats))
