"""Metrics, computed from sums over a whole set, so they do not depend on the batch size (averaging
per-batch scores would). A metric is any class with:
  sums      a dict of tensors that update() adds to, all zeros when built. The loop zeroes them each
            epoch, adds up those of every process under torchrun, and saves them in a checkpoint
            taken mid-epoch: they are the metric's whole state.
  update(pred, target)  adds one batch into sums; stays on the device (no .item(), no .tolist()).
            When every sum is an integer count, the Trainer may give it several small training
            batches joined along dim 0 (counts add up the same however batches are grouped).
  compute() -> {name: float}  the scores from sums; also called on the zero sums before training
            (to check --monitor): nan is fine there, an error is not.
EDIT ME: for a new task, write a class like these and return it from the task's make_metrics."""
import torch


def confusion_matrix(pred, gt, num_classes, ignore_index):
    """(C, C) int64 counts, rows = true class, columns = predicted class. pred and gt are class
    indices of one shape: (B, H, W) pixels or (B,) images."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=gt.device)
    return add_confusion(counts, pred, gt, ignore_index)


def add_confusion(counts, pred, gt, ignore_index):
    """Adds the (pred, gt) pairs into the (C, C) int64 `counts`, in place; returns it. Targets
    equal to ignore_index add 0. Uses no boolean indexing (that would wait for the GPU), and few
    operations: the Trainer calls it at every step, where each one took 15-25 us on the CPU."""
    valid = gt != ignore_index
    idx = pred.add(gt, alpha=counts.shape[0])  # gt * C + pred, in one operation
    idx = torch.where(valid, idx, 0)  # ignored: bin 0, added with weight 0
    counts.view(-1).scatter_add_(0, idx.flatten(), valid.flatten().long())
    return counts


def predicted_class(logits):
    """Class indices from (B, C, ...) logits. max().indices: the same first maximum as argmax(1),
    which on the CPU took 12x longer (2.7 ms vs 0.22 ms for (8, 4, 48, 48) logits, 2 threads)."""
    return logits.max(1).indices


class ConfusionMetrics:
    """The state both demo metrics share: one (C, C) confusion matrix of counts over the set, rows
    = true class, columns = predicted class. Targets equal to ignore_index are left out."""

    def __init__(self, class_names, ignore_index):
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        n = len(self.class_names)
        self.sums = {'confusion': torch.zeros(n, n, dtype=torch.int64)}

    def update(self, pred, gt):
        """pred: (B, C, ...) logits or (B, ...) class indices; gt: (B, ...) class indices."""
        if pred.dim() == gt.dim() + 1:  # logits: one score per class
            pred = predicted_class(pred)
        add_confusion(self.sums['confusion'], pred, gt, self.ignore_index)


class SegMetrics(ConfusionMetrics):
    """Semantic segmentation: pixel accuracy, IoU per class and their mean, mIoU."""
    per_class = 'IoU'  # the score of each class in compute(): IoU_<class name>

    def per_sample(self, pred, gt):
        """(B,) the mIoU of each image alone, as compute() would give for that image: over the
        classes in its truth or prediction. eval.py lists the worst images by it."""
        if pred.dim() == gt.dim() + 1:
            pred = predicted_class(pred)
        n, b = len(self.class_names), gt.shape[0]
        image = torch.arange(b, device=gt.device).view(b, *[1] * (gt.dim() - 1)) * n * n
        idx = torch.where(gt != self.ignore_index, image + gt * n + pred, b * n * n)
        counts = torch.zeros(b * n * n + 1, dtype=torch.int64, device=gt.device)
        counts.scatter_add_(0, idx.flatten(), torch.ones_like(idx).flatten())
        cm = counts[:-1].reshape(b, n, n).double()  # (B, C, C), rows = true class
        tp = cm.diagonal(dim1=1, dim2=2)  # (B, C)
        return (tp / (cm.sum(1) + cm.sum(2) - tp)).nanmean(1)  # (B,)

    def compute(self):
        """{'pixel_acc', 'mIoU', 'IoU_<class name>'}. A class absent from both the truth and the
        predictions has no IoU (nan) and is left out of mIoU."""
        cm = self.sums['confusion'].double()
        tp = cm.diag()
        iou = tp / (cm.sum(0) + cm.sum(1) - tp)  # nan where the union is empty
        scores = {'pixel_acc': (tp.sum() / cm.sum()).item(), 'mIoU': iou.nanmean().item()}
        for name, value in zip(self.class_names, iou.tolist(), strict=True):
            scores[f'IoU_{name}'] = value
        return scores


class ClsMetrics(ConfusionMetrics):
    """Image classification: top-1 accuracy, the accuracy of each class (the share of its images
    classified right) and their mean."""
    per_class = 'acc'  # the score of each class in compute(): acc_<class name>

    def compute(self):
        """{'top1', 'mean_acc', 'acc_<class name>'}; a class with no image has no accuracy (nan)."""
        cm = self.sums['confusion'].double()
        per_class = cm.diag() / cm.sum(1)  # nan for a class with no image
        scores = {'top1': (cm.diag().sum() / cm.sum()).item(),
                  'mean_acc': per_class.nanmean().item()}
        for name, value in zip(self.class_names, per_class.tolist(), strict=True):
            scores[f'acc_{name}'] = value
        return scores
