"""Recorder: weighted means kept as sums and counts, with tensors left on their device until summary()."""
import pytest
import torch

from utils.logger import Recorder


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
