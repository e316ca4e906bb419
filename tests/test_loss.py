"""Loss values against hand-computed cases; ignored pixels never count."""
import math

import pytest
import torch

from loss import DiceLoss, FocalLoss, select_loss, type2loss
from tests.conftest import make_args
from utils.errors import ConfigError


def two_pixels():
    # pixel 0: logits (0, ln 3) -> p(class 1) = 3/4; pixel 1: logits (0, 0) -> p = 1/2 each
    # (B=1, C=2, H=1, W=2)
    pred = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]]).reshape(1, 2, 1, 2)
    return pred


def test_cross_entropy_by_hand():
    gt = torch.tensor([[[1, 0]]])
    loss = select_loss(make_args(loss='ce'))(two_pixels(), gt)
    assert loss.item() == pytest.approx((-math.log(3 / 4) - math.log(1 / 2)) / 2)


def test_dice_by_hand():
    gt = torch.tensor([[[1, 0]]])
    # probabilities: class 0 = (1/4, 1/2), class 1 = (3/4, 1/2);
    # one-hot: class 0 = (0, 1), class 1 = (1, 0)
    dice0 = (2 * 0.5 + 1) / (0.75 + 1 + 1)
    dice1 = (2 * 0.75 + 1) / (1.25 + 1 + 1)
    loss = DiceLoss(ignore_index=255)(two_pixels(), gt)
    assert loss.item() == pytest.approx(1 - (dice0 + dice1) / 2)


def test_focal_by_hand_and_gamma_zero_is_cross_entropy():
    gt = torch.tensor([[[1, 0]]])
    expected = ((1 / 4) ** 2 * -math.log(3 / 4) + (1 / 2) ** 2 * -math.log(1 / 2)) / 2
    assert FocalLoss(255)(two_pixels(), gt).item() == pytest.approx(expected)
    ce = select_loss(make_args(loss='ce'))(two_pixels(), gt)
    assert FocalLoss(255, gamma=0)(two_pixels(), gt).item() == pytest.approx(ce.item())


@pytest.mark.parametrize('name', list(type2loss))
def test_ignored_pixels_do_not_count(name):
    loss_fn = select_loss(make_args(loss=name, ignore_index=255))
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 4, 4)
    gt = torch.randint(0, 3, (2, 4, 4))
    gt[:, :2] = 255
    changed = pred.clone()
    changed[:, :, :2] = torch.randn(2, 3, 2, 4) * 10  # only the ignored pixels' logits change
    assert loss_fn(pred, gt).item() == pytest.approx(loss_fn(changed, gt).item())
    # ...and they are not counted in the mean either: the loss equals that of the kept pixels alone.
    assert loss_fn(pred, gt).item() == pytest.approx(loss_fn(pred[:, :, 2:], gt[:, 2:]).item())


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ConfigError, match=', '.join(type2loss)):
        select_loss(make_args(loss='l2'))
