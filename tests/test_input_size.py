"""A model's input_multiple (utils/input_size.py): read under every wrapper, checked when the model
is built, free for a model without one; and a toy model that refuses any size not a multiple of
32 trains, validates, evaluates and predicts on 48 px and 45 x 61 images, at their own size."""
import ast

import cv2
import pytest
import torch
import torch.nn as nn
from PIL import Image

import eval as evaluate
import predict
import train
from data.make_shapes import make_shapes
from model.model_entry import select_model, type2model
from tests.conftest import make_args
from tests.strict_model import Strict
from utils.errors import ConfigError
from utils.input_size import input_multiple, padded_forward


class Recording(nn.Module):
    """Declares no rule; keeps the tensor it was called with."""

    def forward(self, x):
        self.seen = x
        return x


def test_a_model_without_a_rule_runs_on_the_images_themselves():
    model, img = Recording(), torch.randn(1, 3, 45, 61)
    assert input_multiple(model) == 1 and padded_forward(model, img, crop=True) is img
    assert model.seen is img  # no copy, no pad


def test_the_rule_is_read_under_dataparallel_and_compile():
    model = Strict(make_args(num_classes=3))
    assert input_multiple(torch.compile(nn.DataParallel(model))) == 32
    assert input_multiple(nn.DataParallel(torch.compile(model))) == 32


def test_seg_logits_are_those_of_the_padded_image_cut_back():
    torch.manual_seed(0)
    model, img = Strict(make_args(num_classes=3)).eval(), torch.randn(2, 3, 45, 61)
    with pytest.raises(ValueError, match=r'not \(45, 61\)'):  # what the padding spares it
        model(img)
    out = padded_forward(model, img, crop=True)
    padded = torch.zeros(2, 3, 64, 64)
    padded[..., :45, :61] = img
    assert out.shape == (2, 3, 45, 61) and torch.equal(out, model(padded)[..., :45, :61])


@pytest.mark.parametrize('bad', [0, -32, 2.5, '32', True])
def test_a_bad_declaration_is_one_error_when_the_model_is_built(monkeypatch, bad):
    monkeypatch.setattr(Strict, 'input_multiple', bad)
    monkeypatch.setitem(type2model, 'strict', Strict)
    with pytest.raises(ConfigError, match=rf'Strict.input_multiple is {bad!r}: declare a whole '
                                          r'number of pixels >= 1 .* or leave it out'):
        select_model(make_args(model_type='strict'))


@pytest.fixture(scope='module', params=[(48, 48), (45, 61)], ids=['48px', '45x61'])
def data(request, tmp_path_factory):
    """8 training and 4 validation samples of the demo task at (H, W) = param: generated at 48 px,
    rescaled to 45 x 61 as in tests/conftest.py's shapes_mixed."""
    root = tmp_path_factory.mktemp('data') / 'shapes'
    make_shapes(str(root), n_train=8, n_val=4, size=48, seed=0)
    h, w = request.param
    if (h, w) != (48, 48):
        for image in (root / 'images').iterdir():
            img = cv2.imread(str(image))
            cv2.imwrite(str(image), cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
        for label in (root / 'labels').iterdir():
            gt = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(label), cv2.resize(gt, (w, h), interpolation=cv2.INTER_NEAREST))
    return root, (h, w)


@pytest.mark.slow
def test_a_model_with_a_rule_trains_evaluates_and_predicts_at_any_size(data, monkeypatch,
                                                                      tmp_path):
    monkeypatch.setitem(type2model, 'strict', Strict)
    root, (h, w) = data
    train.main(['--model_type', 'strict', '--train_list', str(root / 'train.txt'),
                '--val_list', str(root / 'val.txt'), '--checkpoints_dir', str(tmp_path),
                '--epochs', '1', '--batch_size', '4', '--num_workers', '0'])
    best = tmp_path / 'strict_exp' / 'best.pth'
    # the scores of validation's batches again, every pixel of the native size counted once
    scores = evaluate.main(['--load_model_path', str(best), '--batch_size', '4'])
    logged = torch.load(best, weights_only=True)['metrics']
    assert {k: scores[k] for k in ('mIoU', 'pixel_acc', 'loss')} == {
        k: logged[f'val/{k}'] for k in ('mIoU', 'pixel_acc', 'loss')}
    result = (tmp_path / 'strict_exp' / 'best' / 'shapes_val_exp' / 'result.txt').read_text()
    confusion = next(line for line in result.splitlines() if line.startswith('confusion: '))
    assert sum(map(sum, ast.literal_eval(confusion.split(': ', 1)[1]))) == 4 * h * w
    for flags in ([], ['--slide_crop', '40', '40']):  # windows of 40 are padded, each, to 64
        out = predict.main(['--load_model_path', str(best), '--input', str(root / 'images'),
                            '--save_prefix', 'slide' if flags else 'whole', *flags])
        assert out['predicted'] == 12 and out['skipped'] == 0
        pngs = sorted((tmp_path / 'strict_exp' / 'best').glob('predict_*/*.png'))
        assert pngs and all(Image.open(png).size == (w, h) for png in pngs)  # PIL: (W, H)
