"""What eval.py writes for a report beside result.txt (utils/results.py): metrics.csv,
confusion.png and, for segmentation, worst.txt; and the titled pictures with a legend
(utils/viz.py)."""
import ast
import csv
import math

import cv2
import numpy as np
import pytest
import torch

import eval as evaluate
import train
from metrics import SegMetrics
from options import prepare_test_args
from task.task_entry import type2task
from tests.conftest import run_name
from utils.folder_lock import release_folders
from utils.results import CELL, NAMES, confusion_picture, worst_txt
from utils.viz import GAP, LEGEND_ROW, MIN_HEIGHT, TITLE_HEIGHT, colorize, make_panel, overlay


def test_the_panel_is_titled_scaled_up_and_has_a_legend_of_the_classes_present():
    img = np.zeros((4, 6, 3), np.uint8)
    pred, gt = np.zeros((4, 6), np.int64), np.full((4, 6), 255)
    pred[0, 0], gt[1, 1], gt[2, 2] = 3, 1, 3  # classes 0, 1, 3 present; 2 absent; 255 ignored
    panel = make_panel(img, pred, gt, names=['bg', 'a', 'b', 'c'])
    s = MIN_HEIGHT // 4  # 4 pixels tall: scaled up by 48
    assert panel.shape == (TITLE_HEIGHT + 4 * s + 3 * LEGEND_ROW, 3 * 6 * s + 2 * GAP, 3)
    for k in range(3):  # a title (dark text on white) above each panel
        left = k * (6 * s + GAP)
        assert panel[:TITLE_HEIGHT, left:left + 6 * s].min() < 128
    prediction = panel[TITLE_HEIGHT:TITLE_HEIGHT + 4 * s, 6 * s + GAP:2 * 6 * s + GAP]
    np.testing.assert_array_equal(prediction[::s, ::s], colorize(pred))  # nearest neighbour
    swatches = panel[TITLE_HEIGHT + 4 * s + 8::LEGEND_ROW, 8]  # the middle of each line's colour
    assert swatches.tolist() == colorize(np.array([0, 1, 3])).tolist()
    assert np.array_equal(make_panel(img, pred, gt), make_panel(img, pred, gt))


def test_the_overlay_is_titled_and_names_the_classes():
    label = np.array([[0, 2], [2, 2]])
    picture = overlay(np.zeros((2, 2, 3), np.uint8), label, ['bg', 'a', 'b'])
    # 2 pixels wide, scaled up to MIN_HEIGHT: wider than the legend's least width, 160
    assert picture.shape == (TITLE_HEIGHT + MIN_HEIGHT + 2 * LEGEND_ROW, MIN_HEIGHT, 3)
    swatches = picture[TITLE_HEIGHT + MIN_HEIGHT + 8::LEGEND_ROW, 8]
    assert swatches.tolist() == colorize(np.array([0, 2])).tolist()


def test_confusion_picture_size_and_a_row_without_truth():
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 8]])
    picture = confusion_picture(cm, ['background', 'circle', 'a very long class name'])
    assert picture.shape == (TITLE_HEIGHT + NAMES + 3 * CELL, NAMES + 3 * CELL, 3)
    grid = picture[TITLE_HEIGHT + NAMES:, NAMES:]
    assert grid[CELL + 4, 4].tolist() == [220, 220, 220]  # circle has no truth: grey
    assert grid[2 * CELL + 4, 2 * CELL + 4].tolist() == [95, 151, 255]  # 0.8 of its row: dark
    np.testing.assert_array_equal(picture, confusion_picture(cm, ['background', 'circle',
                                                                  'a very long class name']))


def test_per_sample_scores_are_each_images_own_miou():
    metric = SegMetrics(['a', 'b', 'c'], 255)
    logits = torch.randn(3, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    gt = torch.randint(0, 3, (3, 5, 5), generator=torch.Generator().manual_seed(1))
    gt[1, :2] = 255
    gt[2] = 255  # nothing scored: nan
    scores = metric.per_sample(logits, gt).tolist()
    for b in range(2):
        alone = SegMetrics(['a', 'b', 'c'], 255)
        alone.update(logits[b:b + 1], gt[b:b + 1])
        assert scores[b] == pytest.approx(alone.compute()['mIoU'])
    assert math.isnan(scores[2])
    assert worst_txt([('x', 0.5), ('n', math.nan), ('a', 0.5), ('b', 0.1)], n=3) == (
        'b\t0.1000\na\t0.5000\nx\t0.5000\n')


@pytest.fixture(scope='module', params=list(type2task))
def evaluated(request, task_lists, tmp_path_factory):
    """(task, best.pth, the result folders of two evaluations of it) after a 1-epoch run."""
    task = request.param
    checkpoints = tmp_path_factory.mktemp('run')
    train.main(task_lists(task) + ['--checkpoints_dir', str(checkpoints), '--epochs', '1',
                                   '--batch_size', '4', '--num_workers', '0'])
    best = checkpoints / run_name(task) / 'best.pth'
    folders = []
    for prefix, batch in (('one', '1'), ('two', '4')):
        evaluate.main(['--load_model_path', str(best), '--num_workers', '0',
                       '--batch_size', batch, '--save_prefix', prefix])
        [folder] = (best.parent / 'best').glob(f'*_{prefix}')
        folders.append(folder)
    return task, best, folders


def read_result(folder):
    return dict(line.split(': ', 1) for line in (folder / 'result.txt').read_text().splitlines())


@pytest.mark.slow
def test_metrics_csv_and_confusion_png(evaluated):
    task, _, (one, two) = evaluated
    result = read_result(one)
    names, per_class = type2task[task].defaults['class_names'], {'seg': 'IoU', 'cls': 'acc'}[task]
    rows = list(csv.DictReader((one / 'metrics.csv').open()))
    assert [r['class'] for r in rows] == names
    assert [r[per_class] for r in rows] == [result[f'{per_class}_{n}'] for n in names]
    confusion = np.array(ast.literal_eval(result['confusion']))
    assert [int(r['support']) for r in rows] == confusion.sum(1).tolist()
    if task == 'cls':  # every image counted once
        assert sum(int(r['support']) for r in rows) == int(result['num_samples'])
    picture = cv2.imread(str(one / 'confusion.png'))
    n = len(names)
    assert picture.shape == (TITLE_HEIGHT + NAMES + n * CELL, NAMES + n * CELL, 3)
    assert (one / 'confusion.png').read_bytes() == (two / 'confusion.png').read_bytes()


@pytest.mark.slow
def test_worst_txt_lists_the_lowest_images_by_their_own_score(evaluated):
    task, best, (one, two) = evaluated
    if task != 'seg':
        assert not (one / 'worst.txt').exists()
        return
    lines = [line.split('\t') for line in (one / 'worst.txt').read_text().splitlines()]
    assert len(lines) == 6  # fewer than 10 images: all of them
    scores = [float(score) for _, score in lines]
    assert scores == sorted(scores)
    assert (two / 'worst.txt').read_text() == (one / 'worst.txt').read_text()
    # each image's mIoU recomputed from its own prediction
    args, ckpt = prepare_test_args(['--load_model_path', str(best), '--num_workers', '0',
                                    '--save_prefix', 'check'])
    try:
        evaluator = evaluate.Evaluator(args, ckpt)
        own = {}
        with torch.no_grad():
            for i, data in enumerate(evaluator.val_loader):
                _, pred, gt = evaluator.step(data)
                metric = evaluator.task.make_metrics()
                metric.update(pred, gt)
                own[evaluator.val_loader.dataset.samples[i][0]] = metric.compute()['mIoU']
    finally:
        release_folders()
    assert {path: float(score) for path, score in lines} == pytest.approx(
        {path: round(v, 4) for path, v in own.items()}, abs=1e-4)
