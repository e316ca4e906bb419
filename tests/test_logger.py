"""Recorder: weighted means kept as sums and counts, with tensors left on their device until summary()."""
import argparse
import os

import pytest
import torch

from utils.logger import Logger, Recorder


def test_means_are_weighted_by_n():
    r = Recorder()
    r.record('loss', 1.0, n=3)
    r.record('loss', 3.0, n=1)
    r.record('acc', 0.5)
    assert r.summary() == {'loss': pytest.approx(1.5), 'acc': 0.5}


def test_tensors_stay_tensors_until_summary():
    r = Recorder()
    value = torch.tensor(2.0, requires_grad=True) * 1
    r.record('loss', value, n=4)
    r.record('loss', torch.tensor(4.0), n=4)
    assert torch.is_tensor(r.sums['loss']) and not r.sums['loss'].requires_grad  # detached: no graph kept
    assert r.counts['loss'] == 8
    assert r.summary() == {'loss': 3.0}


def test_reset():
    r = Recorder()
    r.record('x', 1.0)
    r.reset()
    assert r.summary() == {}


def test_checkpoint_files_by_save_freq_and_last_epoch(tmp_path):
    args = argparse.Namespace(model_dir=str(tmp_path / 'run'), checkpoints_dir=str(tmp_path), save_freq=2, epochs=3)
    os.mkdir(args.model_dir)
    logger = Logger(args)
    for epoch in (1, 2, 3):
        logger.save_check_point({'model': {}, 'optimizer': {}, 'epoch': epoch}, epoch, is_best=epoch == 1)
    logger.close()
    files = set(os.listdir(args.model_dir))
    assert {'epoch_2.pth', 'epoch_3.pth', 'best.pth', 'last.pth'} <= files and 'epoch_1.pth' not in files
    assert torch.load(tmp_path / 'run' / 'best.pth', weights_only=True)['epoch'] == 1
    assert torch.load(tmp_path / 'run' / 'last.pth', weights_only=True)['epoch'] == 3
    assert (tmp_path / 'latest').read_text() == 'run\n'
