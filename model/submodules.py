"""Building blocks shared by the model variants: conv-bn-relu, residual blocks, a U-Net encoder and
decoder, a multi-dilation context block, and global pooling for classifiers. Reuse them in your own
model/<name>/ package."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias: BatchNorm adds one), BatchNorm, ReLU; the size is kept."""

    def __init__(self, in_ch, out_ch, dilation=1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two ConvBNReLU: the plain U-Net block."""

    def __init__(self, in_ch, out_ch):
        super().__init__(ConvBNReLU(in_ch, out_ch), ConvBNReLU(out_ch, out_ch))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (a 1x1 projection when the width changes)."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(in_ch, out_ch),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut = nn.Identity() if in_ch == out_ch else nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class Encoder(nn.Module):
    """A block per level, halving the size between levels. Returns every level's features,
    finest first."""

    def __init__(self, in_ch, widths, block):
        super().__init__()
        chans = [in_ch] + list(widths)
        self.levels = nn.ModuleList(block(chans[i], chans[i + 1]) for i in range(len(widths)))

    def forward(self, x):
        feats = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """U-Net decoder: upsample the coarser features, concatenate the skip connection, apply a
    block."""

    def __init__(self, widths, block):
        super().__init__()
        self.levels = nn.ModuleList(
            block(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1)
        )

    def forward(self, feats):
        x = feats[-1]
        for i in reversed(range(len(self.levels))):
            skip = feats[i]
            # odd sizes too
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            x = self.levels[i](torch.cat([skip, x], dim=1))
        return x


class ContextBlock(nn.Module):
    """Parallel dilated convolutions and a global-average branch, fused by a 1x1 convolution: a
    light ASPP that lets every pixel see most of the image."""

    def __init__(self, ch, dilations=(1, 2, 4)):
        super().__init__()
        self.branches = nn.ModuleList(ConvBNReLU(ch, ch, d) for d in dilations)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(ch * (len(dilations) + 1), ch, 1, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        pooled = self.pool(x).expand_as(x)
        return self.fuse(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class ConcatPool(nn.Module):
    """Global average and max pooling side by side (fastai's AdaptiveConcatPool2d): (B, C, H, W) ->
    (B, 2C) for any H, W. The max says whether a feature (a corner, a curve) is anywhere at all."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
