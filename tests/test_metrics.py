"""Confusion matrix, IoU, mIoU and pixel accuracy against hand-computed cases."""
import math

import pytest
import torch

from metrics import ClsMetrics, SegMetrics, confusion_matrix


def test_confusion_matrix_by_hand_with_ignored_pixel():
    gt = torch.tensor([[[0, 0, 1, 1, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1, 0]]])
    cm = confusion_matrix(pred, gt, num_classes=2, ignore_index=255)
    assert cm.tolist() == [[1, 1], [0, 2]]  # rows: truth, columns: prediction


def test_scores_by_hand():
    m = SegMetrics(['bg', 'fg'], ignore_index=255)
    m.update(torch.tensor([[[0, 1, 1, 1, 0]]]), torch.tensor([[[0, 0, 1, 1, 255]]]))
    s = m.compute()
    assert s['pixel_acc'] == pytest.approx(3 / 4)
    assert s['IoU_bg'] == pytest.approx(1 / 2)  # tp 1, union 2
    assert s['IoU_fg'] == pytest.approx(2 / 3)  # tp 2, union 3
    assert s['mIoU'] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_logits_are_reduced_by_argmax_over_classes():
    m = SegMetrics(['a', 'b', 'c'], 255)
    # (B=2, C=3, 1, 1)
    logits = torch.tensor([[0.0, 3.0, 1.0], [0.0, 1.0, 2.0]]).reshape(2, 3, 1, 1)
    # class 1 wins in the first, 2 in the second
    m.update(logits, torch.tensor([1, 2]).reshape(2, 1, 1))
    assert m.compute()['pixel_acc'] == 1.0


def test_accumulated_over_batches_equals_whole_set():
    torch.manual_seed(0)
    pred, gt = torch.randint(0, 3, (6, 8, 8)), torch.randint(0, 3, (6, 8, 8))
    whole, parts = SegMetrics(['a', 'b', 'c'], 255), SegMetrics(['a', 'b', 'c'], 255)
    whole.update(pred, gt)
    for i in range(0, 6, 4):  # batches of 4 and 2
        parts.update(pred[i:i + 4], gt[i:i + 4])
    assert whole.compute() == parts.compute()


def test_absent_class_is_nan_and_left_out_of_miou():
    m = SegMetrics(['a', 'b', 'never'], 255)
    m.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    s = m.compute()
    assert math.isnan(s['IoU_never'])
    assert s['mIoU'] == 1.0


def test_reset_forgets_earlier_batches():
    m = SegMetrics(['a', 'b'], 255)
    m.update(torch.tensor([[[1]]]), torch.tensor([[[0]]]))
    m.sums['confusion'].zero_()  # what the loop does between epochs
    m.update(torch.tensor([[[0]]]), torch.tensor([[[0]]]))
    assert m.compute()['pixel_acc'] == 1.0


def test_classification_scores_by_hand_with_an_ignored_target():
    m = ClsMetrics(['a', 'b', 'never'], ignore_index=-100)
    logits = torch.tensor([[3.0, 0, 0], [0, 2.0, 0], [1.0, 0, 0], [0, 0, 5.0]])  # (B=4, C=3)
    m.update(logits, torch.tensor([0, 1, 1, -100]))  # right, right, wrong, ignored
    s = m.compute()
    assert m.sums['confusion'].tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert s['top1'] == pytest.approx(2 / 3)
    assert s['acc_a'] == 1.0 and s['acc_b'] == 0.5 and math.isnan(s['acc_never'])
    assert s['mean_acc'] == 0.75  # the classes with images only
