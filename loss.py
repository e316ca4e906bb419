"""Losses chosen by --loss. Each is an nn.Module called as loss(pred, gt) with pred
(B, C, H, W) logits and gt (B, H, W) class indices; pixels equal to --ignore_index do not count.
Add a loss: write a class whose __init__ takes ignore_index, then add one line to type2loss."""
import torch.nn as nn
import torch.nn.functional as F

from utils.errors import ConfigError


class CrossEntropyLoss(nn.Module):
    """The mean cross-entropy over the counted pixels, as nn.CrossEntropyLoss, except that a
    batch whose pixels are all --ignore_index gives 0 instead of NaN (0 / 0), which would stop
    the run as a non-finite loss."""

    def __init__(self, ignore_index):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred, gt):
        total = F.cross_entropy(pred, gt, ignore_index=self.ignore_index, reduction='sum')
        return total / (gt != self.ignore_index).sum().clamp(min=1)


class DiceLoss(nn.Module):
    """1 - the soft Dice coefficient 2|P.G| / (|P| + |G|) of softmax probabilities, averaged
    over classes. Insensitive to class frequency: small shapes count as much as the large
    background."""

    def __init__(self, ignore_index, smooth=1.0):
        super().__init__()
        self.ignore_index = ignore_index
        # avoids 0 / 0 for a class absent from both the batch and the prediction
        self.smooth = smooth

    def forward(self, pred, gt):
        valid = (gt != self.ignore_index).unsqueeze(1)  # (B, 1, H, W)
        prob = pred.softmax(1) * valid  # (B, C, H, W)
        labels = gt.masked_fill(~valid[:, 0], 0)  # (B, H, W)
        onehot = F.one_hot(labels, pred.shape[1]).permute(0, 3, 1, 2) * valid
        inter = (prob * onehot).sum((0, 2, 3))  # (C,)
        total = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        return 1 - ((2 * inter + self.smooth) / (total + self.smooth)).mean()


class FocalLoss(nn.Module):
    """Cross-entropy scaled by (1 - p_t) ** gamma, so pixels already classified well count less
    (Lin et al., 2017). gamma=0 gives plain cross-entropy."""

    def __init__(self, ignore_index, gamma=2.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.gamma = gamma

    def forward(self, pred, gt):
        # (B, H, W), 0 if ignored
        ce = F.cross_entropy(pred, gt, ignore_index=self.ignore_index, reduction='none')
        focal = (1 - (-ce).exp()) ** self.gamma * ce
        # mean over counted pixels
        return focal.sum() / (gt != self.ignore_index).sum().clamp(min=1)


type2loss = {  # --loss name -> loss class. EDIT ME: add yours here
    'ce': CrossEntropyLoss,
    'dice': DiceLoss,
    'focal': FocalLoss,
}


def select_loss(args):
    if args.loss not in type2loss:
        raise ConfigError(f'unknown --loss {args.loss!r}; choose one of {", ".join(type2loss)}')
    return type2loss[args.loss](ignore_index=args.ignore_index)
