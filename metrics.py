"""Segmentation metrics computed from one confusion matrix accumulated over a whole set, so they do not
depend on the batch size (averaging per-batch IoUs would). Pixels equal to --ignore_index are left out.
EDIT ME: for another task, keep the update()/sync()/compute() shape and return your own metrics by name."""
import torch

from utils.dist import all_reduce


def confusion_matrix(pred, gt, num_classes, ignore_index):
    """(C, C) int64 counts of pixels, rows = ground truth class, columns = predicted class.
    pred and gt are (B, H, W) class indices. Uses no boolean indexing: that would wait for the GPU."""
    n = num_classes * num_classes
    idx = torch.where(gt != ignore_index, gt * num_classes + pred, n)  # ignored pixels go to a spare bin
    counts = torch.zeros(n + 1, dtype=torch.int64, device=gt.device)
    counts.scatter_add_(0, idx.flatten(), torch.ones_like(idx).flatten())
    return counts[:n].reshape(num_classes, num_classes)


def scores_from_confusion(cm, class_names):
    """{'pixel_acc', 'mIoU', 'IoU_<class name>' per class} as Python floats. A class absent from both the
    ground truth and the predictions has no IoU (nan) and is left out of mIoU."""
    cm = cm.double()
    tp = cm.diag()
    iou = tp / (cm.sum(0) + cm.sum(1) - tp)  # nan where the union is empty
    scores = {'pixel_acc': (tp.sum() / cm.sum()).item(), 'mIoU': iou.nanmean().item()}
    scores.update({f'IoU_{name}': v for name, v in zip(class_names, iou.tolist(), strict=True)})
    return scores


class SegMetrics:
    """Accumulates a set's confusion matrix batch by batch: update() stays on the device, compute() syncs once."""

    def __init__(self, class_names, ignore_index):
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.cm = None

    def reset(self):
        self.cm = None

    def update(self, pred, gt):
        """pred: (B, C, H, W) logits or (B, H, W) class indices; gt: (B, H, W) class indices."""
        if pred.dim() == 4:  # max().indices: the same first-maximum index as argmax(1), which on the CPU took
            pred = pred.max(1).indices  # 12x longer (2.7 ms vs 0.22 ms for (8, 4, 48, 48) logits, 2 threads)
        cm = confusion_matrix(pred, gt, len(self.class_names), self.ignore_index)
        self.cm = cm if self.cm is None else self.cm + cm

    def sync(self):
        """Under torchrun: adds up the confusion matrices of all processes, so that compute() scores the whole set."""
        n = len(self.class_names)
        self.cm = all_reduce(self.cm if self.cm is not None else torch.zeros(n, n, dtype=torch.int64))

    def compute(self):
        cm = self.cm if self.cm is not None else torch.zeros(len(self.class_names), len(self.class_names))
        return scores_from_confusion(cm, self.class_names)
