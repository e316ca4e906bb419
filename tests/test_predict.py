"""predict.py: the inputs it reads (an image, a folder, a list file), what it writes for each task
(segmentation PNGs with the palette, predictions.csv, pictures), the files it skips, its sliding
windows, and its errors. The end-to-end tests predict with a one-epoch run's best.pth."""
import argparse
import csv
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import predict
import train
from data.augment import to_tensor
from data.image_io import read_image, read_label
from model.base import BaseModel
from model.model_entry import type2model
from task.seg import SegTask
from task.task_entry import check_predicts, type2task
from tests.conftest import make_args, run_name
from utils.errors import ConfigError
from utils.viz import PALETTE
from utils.weights import weights_of

SKIPPED = ('notes.txt', 'fake.jpg', 'broken.png')  # what the input folder holds besides images


@pytest.fixture(scope='module', params=list(type2task))
def best(request, task_lists, tmp_path_factory):
    """best.pth of a one-epoch run of each task on its tiny dataset."""
    checkpoints = tmp_path_factory.mktemp('run')
    train.main(task_lists(request.param) + ['--checkpoints_dir', str(checkpoints), '--epochs',
                                            '1', '--batch_size', '4', '--num_workers', '0'])
    return checkpoints / run_name(request.param) / 'best.pth'


@pytest.fixture(scope='module')
def images(tiny_data, tmp_path_factory):
    """A folder of the tiny seg data's validation images: three at the top, two in sub/, one
    rescaled to 40 x 24 (W x H) in sub/deeper/, and a text file, a text file named .jpg and a
    PNG cut short."""
    folder = tmp_path_factory.mktemp('inputs') / 'images'
    (folder / 'sub' / 'deeper').mkdir(parents=True)
    sources = sorted((tiny_data['seg'] / 'images').glob('val_*.png'))
    for source, target in zip(sources, ['a.png', 'b.png', 'c.png', 'sub/d.png', 'sub/e.png'],
                              strict=False):
        shutil.copy(source, folder / target)
    img = cv2.imread(str(sources[5]))
    cv2.imwrite(str(folder / 'sub' / 'deeper' / 'f.jpg'), cv2.resize(img, (40, 24)))
    (folder / 'notes.txt').write_text('not an image\n')
    (folder / 'fake.jpg').write_text('not an image either\n')
    (folder / 'broken.png').write_bytes(sources[0].read_bytes()[:200])  # its header is whole
    return folder


NAMES = ['a.png', 'b.png', 'c.png', 'sub/d.png', 'sub/e.png', 'sub/deeper/f.jpg']


def own_predictions(best, folder):
    """{name: logits} of each image of NAMES, from the checkpoint's model run here directly."""
    ckpt = torch.load(best, weights_only=True)
    args = argparse.Namespace(**ckpt['args'])
    model = type2model[args.model_type](args)
    model.load_state_dict(weights_of(ckpt, str(best)))
    model.eval()
    with torch.no_grad():
        return {name: model(to_tensor(read_image(str(folder / name), 'test'),
                                      np.zeros(0))[0][None])[0] for name in NAMES}


def predict_into(best, images, *flags):
    return predict.main(['--load_model_path', str(best), '--input', str(images), *flags])


def read_rows(result_dir):
    with open(f'{result_dir}/predictions.csv', newline='') as f:
        return {row['path']: row for row in csv.DictReader(f)}


def assert_predictions(task, best, images, result_dir):
    """Each image's output is at its path, at its size, and as the model itself predicts."""
    own = own_predictions(best, images)
    rows = read_rows(result_dir)
    assert sorted(rows) == sorted(NAMES)
    names = torch.load(best, weights_only=True)['args']['class_names']
    if task == 'seg':  # (classification compares the scores of every class)
        classes = torch.cat([logits.argmax(0).flatten() for logits in own.values()])
        assert len(classes.unique()) > 1, 'one class everywhere would hide a wrong prediction'
    for name, logits in own.items():
        if task == 'seg':
            png = Image.open(result_dir / rows[name]['prediction'])
            assert rows[name]['prediction'] == name.rsplit('.', 1)[0] + '.png'
            assert png.mode == 'P' and png.size == Image.open(images / name).size
            assert png.getpalette()[:3 * len(PALETTE)] == PALETTE.flatten().tolist()
            label = read_label(str(result_dir / rows[name]['prediction']), 'test')
            assert np.array_equal(label, logits.argmax(0).numpy()), name
        else:
            k = min(5, len(names))
            order = logits.softmax(0).argsort(descending=True)[:k].tolist()
            row = rows[name]
            assert row['class'] == names[order[0]]
            assert [row['class']] + [row[f'class_{i}'] for i in range(2, k + 1)] == [
                names[i] for i in order]
            assert float(row['score']) == pytest.approx(logits.softmax(0).max().item(), abs=1e-4)


@pytest.mark.slow
def test_predict_on_a_folder_writes_each_image_at_its_path_and_skips_the_others(best, images):
    task = 'cls' if 'cls' in best.parent.name else 'seg'
    result = predict_into(best, images, '--batch_size', '4')
    result_dir = best.parent / 'best' / 'predict_images_exp'
    assert result == {'result_dir': str(result_dir), 'predicted': 6, 'skipped': 3}
    assert_predictions(task, best, images, result_dir)
    skipped = (result_dir / 'skipped.txt').read_text().splitlines()
    assert len(skipped) == 3
    assert all(any(name in line for line in skipped) for name in SKIPPED)
    assert (result_dir / 'args.json').is_file() and (result_dir / 'predict.log').is_file()
    assert 'skipped 3 files' in (result_dir / 'predict.log').read_text()

    # batches of one: the same predictions, and a picture of each
    result = predict_into(best, images, '--batch_size', '1', '--save_viz', '--save_prefix', 'b1')
    assert result['result_dir'] == str(best.parent / 'best' / 'predict_images_b1')
    assert read_rows(result['result_dir']) == read_rows(result_dir)
    for name in NAMES:
        picture = cv2.imread(f"{result['result_dir']}/viz/{name.rsplit('.', 1)[0]}.png")
        assert picture.ndim == 3 and picture.shape[1] >= Image.open(images / name).size[0]
        if task == 'seg':
            png = f"{name.rsplit('.', 1)[0]}.png"
            ones = np.asarray(Image.open(f"{result['result_dir']}/{png}"))
            assert np.array_equal(ones, np.asarray(Image.open(result_dir / png))), name


@pytest.mark.slow
def test_run_flags_come_from_the_checkpoint_unless_given(best, images, tmp_path):
    """--amp and --channels_last as the run was trained (off), or as the command line says."""
    plain = predict_into(best, images, '--result_dir', str(tmp_path / 'plain'))['result_dir']
    saved = json.loads((tmp_path / 'plain' / 'args.json').read_text())
    assert (saved['amp'], saved['channels_last'], saved['model_type']) == (
        False, False, torch.load(best, weights_only=True)['args']['model_type'])
    fast = predict_into(best, images, '--amp', '--channels_last',
                        '--result_dir', str(tmp_path / 'fast'))
    saved = json.loads((tmp_path / 'fast' / 'args.json').read_text())
    assert (saved['amp'], saved['channels_last'], fast['predicted']) == (True, True, 6)
    assert sorted(read_rows(fast['result_dir'])) == sorted(read_rows(plain))


@pytest.mark.slow
def test_slide_crop_of_one_window_equals_whole_images(best, images, tmp_path):
    """--slide_crop 32 32: the 32 x 32 images are one window each, predicted as whole images;
    the 40 x 24 one is padded to 40 x 32 and cut back. A classification has no map to slide."""
    if 'cls' in best.parent.name:
        with pytest.raises(ConfigError, match='leave --slide_crop out'):
            predict_into(best, images, '--slide_crop', '32', '32', '--save_prefix', 'slide')
        assert not (best.parent / 'best' / 'predict_images_slide').exists()
        return
    whole = predict_into(best, images, '--result_dir', str(tmp_path / 'whole'))['result_dir']
    slid = predict_into(best, images, '--slide_crop', '32', '32',
                        '--result_dir', str(tmp_path / 'slide'))['result_dir']
    for name in NAMES:
        png = name.rsplit('.', 1)[0] + '.png'
        a, b = (np.asarray(Image.open(f'{folder}/{png}')) for folder in (whole, slid))
        assert b.shape == a.shape
        if name != 'sub/deeper/f.jpg':
            assert np.array_equal(a, b), name


@pytest.mark.slow
def test_predict_errors_leave_no_folder(best, tmp_path, monkeypatch):
    before = sorted(best.parent.rglob('*'))
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'readme.md').write_text('no images here\n')
    with pytest.raises(ConfigError, match=r'holds no image \(.jpg'):
        predict_into(best, empty, '--save_prefix', 'empty')
    with pytest.raises(ConfigError, match='does not exist: pass an image, a folder'):
        predict_into(best, tmp_path / 'missing', '--save_prefix', 'missing')
    assert sorted(best.parent.rglob('*')) == before

    class NoPredict:  # a user's task written before predict.py: forward, no infer
        defaults = SegTask.defaults

    monkeypatch.setitem(type2task, 'seg', NoPredict)
    monkeypatch.setitem(type2task, 'cls', NoPredict)
    with pytest.raises(ConfigError, match='NoPredict lacks infer, save_prediction, '
                                          'prediction_picture: add them'):
        predict_into(best, empty)
    assert sorted(best.parent.rglob('*')) == before


def test_inputs_an_image_a_folder_and_a_list(tmp_path):
    for name in ('a.png', 'sub/b.JPG', 'sub/c.txt', 'outside.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    files, names, skipped = predict.list_inputs(str(tmp_path / 'sub'))
    assert names == ['b.JPG'] and skipped == [f'{tmp_path}/sub/c.txt: not an image '
                                              '(.jpg, .jpeg, .png, .bmp, .tif, .tiff)']
    files, names, skipped = predict.list_inputs(str(tmp_path / 'a.png'))
    assert (files, names, skipped) == ([str(tmp_path / 'a.png')], ['a.png'], [])
    lists = tmp_path / 'lists'
    lists.mkdir()
    (lists / 'list.txt').write_text(f'../a.png\n\n# a comment\n{tmp_path}/sub/b.JPG\n')
    files, names, _ = predict.list_inputs(str(lists / 'list.txt'))
    assert files == [str(lists / '../a.png'), f'{tmp_path}/sub/b.JPG']
    assert names == [str(tmp_path / 'a.png').lstrip('/'), str(tmp_path / 'sub/b.JPG').lstrip('/')]
    (lists / 'empty.txt').write_text('# nothing\n')
    with pytest.raises(ConfigError, match='lists no samples'):
        predict.list_inputs(str(lists / 'empty.txt'))


class PerPixel(nn.Module):
    """A model whose receptive field is one pixel: a window predicts its pixels as the whole
    image does."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize('size', [(50, 70), (20, 70), (32, 32)])
def test_slide_infer_averages_windows_into_the_whole_image(size):
    torch.manual_seed(0)
    model, img = PerPixel(), torch.randn(2, 3, *size)
    with torch.no_grad():
        _, slid = predict.slide_infer(lambda x: (x, model(x)), img, (32, 32))
        whole = model(img)
    assert slid.shape == whole.shape == (2, 5, *size)
    assert torch.allclose(slid, whole, rtol=1e-5, atol=1e-6)


def test_slide_infer_of_one_window_is_the_whole_image():
    """A U-Net (a receptive field as large as the image): one window is the whole image."""
    torch.manual_seed(0)
    model, img = BaseModel(make_args(num_classes=4)).eval(), torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        _, slid = predict.slide_infer(lambda x: (x, model(x)), img, (32, 48))
        assert torch.equal(slid, model(img))


def test_window_starts_overlap_and_end_at_the_border():
    assert predict.window_starts(32, 32) == [0]
    assert predict.window_starts(70, 32) == [0, 21, 38]  # stride 21, the last one shifted back
    assert predict.window_starts(33, 32) == [0, 1]


def test_a_task_without_the_prediction_methods_is_named(monkeypatch):
    class OldTask:
        def infer(self, model, img):
            return img, model(img)

    monkeypatch.setitem(type2task, 'old', OldTask)
    with pytest.raises(ConfigError, match='OldTask lacks save_prediction, prediction_picture: '
                                          r'add them as task/seg.py has them'):
        check_predicts('old')
    for task in type2task:
        if task != 'old':
            check_predicts(task)  # the project's own tasks predict
