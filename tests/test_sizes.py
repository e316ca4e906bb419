"""Images of several sizes, as real datasets have them: training on random crops (--crop_size,
--scale_range), validation and eval.py at each image's own size, with the same metrics at any
batch size; without --crop_size, one clear error before anything is made."""
import ast

import pytest
import torch

import eval as evaluate
import train
from data.data_entry import select_eval_loader
from tests.conftest import make_args
from tests.test_ddp import read_result
from utils.errors import run_cli

# the native sizes of shapes_mixed's 6 validation images (tests/conftest.py), in pixels
VAL_PIXELS = 2 * (32 * 32 + 40 * 24 + 24 * 40)


def flags(data, tmp_path, *extra):
    return ['--train_list', str(data / 'train.txt'), '--val_list', str(data / 'val.txt'),
            '--checkpoints_dir', str(tmp_path / 'checkpoints'), '--epochs', '1',
            '--batch_size', '4', '--num_workers', '0', *extra]


def test_mixed_sizes_without_crop_size_is_one_error_naming_two_sizes(shapes_mixed, tmp_path,
                                                                     capsys):
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: train.main(flags(shapes_mixed, tmp_path)))
    err = capsys.readouterr().err
    assert stop.value.code == 1 and err.count('\n') == 1 and 'Traceback' not in err
    assert 'train.txt:1 is 32 x 32' in err and 'train.txt:2 is 40 x 24' in err
    assert '--crop_size' in err and '--batch_size 1' in err
    assert not (tmp_path / 'checkpoints').exists()  # nothing made


@pytest.mark.parametrize('extra, words', [
    (['--scale_range', '0.5', '2'], '--scale_range 0.5 2.0 needs --crop_size'),
    (['--crop_size', '24', '--scale_range', '2', '1'], 'give LO HI with 0 < LO <= HI'),
    (['--crop_size', '24', '0'], '--crop_size 24 0: give H W'),
    (['--crop_size', '1', '2', '3'], '--crop_size 1 2 3: give H W'),
])
def test_bad_geometry_flags_are_refused(shapes_mixed, tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit):
        run_cli(lambda: train.main(flags(shapes_mixed, tmp_path, *extra)))
    assert words in capsys.readouterr().err


def test_validation_batches_hold_one_size_each_and_every_image_once(shapes_mixed):
    args = make_args(val_list=str(shapes_mixed / 'val.txt'), batch_size=4, num_workers=0)
    loader = select_eval_loader(args)
    seen = []
    for img, label in loader:
        assert img.shape[-2:] == label.shape[-2:]  # one size a batch: nothing padded
        seen.append(img.shape[0])
    # sizes 32x32, 40x24, 24x40 twice each: three batches of two
    assert seen == [2, 2, 2]
    assert sorted(i for batch in loader.batch_sampler for i in batch) == list(range(6))


@pytest.mark.slow
def test_crops_train_and_eval_scores_native_sizes_alike_at_any_batch_size(shapes_mixed, tmp_path):
    train.main(flags(shapes_mixed, tmp_path, '--crop_size', '24', '28', '--scale_range', '0.75',
                     '1.5', '--epochs', '2'))
    best = tmp_path / 'checkpoints' / 'base_exp' / 'best.pth'
    results = {}
    for batch_size in (1, 4):
        scores = evaluate.main(['--load_model_path', str(best), '--batch_size', str(batch_size),
                                '--save_prefix', f'b{batch_size}'])
        result = read_result(best.parent / 'best' / f'shapes_mixed_val_b{batch_size}' /
                             'result.txt')
        results[batch_size] = (scores, result['confusion'])
    (one, confusion_one), (four, confusion_four) = results[1], results[4]
    # every pixel of every image at its own size, counted once
    assert sum(map(sum, ast.literal_eval(confusion_four))) == VAL_PIXELS
    assert confusion_one == confusion_four
    assert {k: v for k, v in one.items() if k != 'loss'} == {
        k: v for k, v in four.items() if k != 'loss'}
    assert one['loss'] == pytest.approx(four['loss'], abs=1e-5)
    # validation in training (batches of 4) logged what eval.py finds
    logged = torch.load(best, weights_only=True)['metrics']
    assert logged['val/mIoU'] == four['mIoU']
