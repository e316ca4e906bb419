"""Recorder: weighted means kept as sums and counts, with tensors left on their device until
summary().
Logger: which checkpoint files are written and kept."""
import os
import re

import pytest
import torch

from tests.conftest import make_args
from utils.checkpoint import CHECKSUM_KEY, load_checkpoint
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
    # detached: no graph kept
    assert torch.is_tensor(r.sums['loss']) and not r.sums['loss'].requires_grad
    assert r.counts['loss'] == 8
    assert r.summary() == {'loss': 3.0}


def test_reset():
    r = Recorder()
    r.record('x', 1.0)
    r.reset()
    assert r.summary() == {}


def save_epochs(tmp_path, epochs, **flags):
    """Runs a Logger's checkpoint saving for `epochs` epochs (epoch 1 the best) with the given
    --flags."""
    args = make_args(
        model_dir=str(tmp_path / 'run'), checkpoints_dir=str(tmp_path), epochs=epochs, **flags
    )
    os.mkdir(args.model_dir)
    logger = Logger(args)
    for epoch in range(1, epochs + 1):
        state = {'model': {}, 'optimizer': {}, 'rng': {}, 'epoch': epoch}
        logger.save_check_point(state, epoch, is_best=epoch == 1)
    logger.close()
    return tmp_path / 'run'


def test_checkpoint_files_by_save_freq_and_last_epoch(tmp_path):
    run = save_epochs(tmp_path, 3, save_freq=2)
    files = set(os.listdir(run))
    assert (
        {'epoch_2.pth', 'epoch_3.pth', 'best.pth', 'last.pth'} <= files
        and 'epoch_1.pth' not in files
    )
    assert torch.load(run / 'best.pth', weights_only=True)['epoch'] == 1
    # no resume-only entries
    assert set(load_checkpoint(str(run / 'best.pth'))) == {'model', 'epoch'}
    # every file has its checksum
    assert CHECKSUM_KEY in torch.load(run / 'best.pth', weights_only=True)
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 3
    assert (tmp_path / 'latest').read_text() == 'run\n'


@pytest.mark.parametrize('keep_last, kept', [(0, [1, 2, 3, 4, 5]), (2, [4, 5]), (1, [5])])
def test_keep_last_caps_epoch_files_but_keeps_best_and_last(tmp_path, keep_last, kept):
    run = save_epochs(tmp_path, 5, keep_last=keep_last)
    assert sorted(int(f[6:-4]) for f in os.listdir(run) if f.startswith('epoch_')) == kept
    # older than every kept epoch file
    assert torch.load(run / 'best.pth', weights_only=True)['epoch'] == 1
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 5


def test_keep_last_defaults_to_five(tmp_path):
    run = save_epochs(tmp_path, 7)
    assert sorted(f for f in os.listdir(run) if f.startswith('epoch_')) == [
        f'epoch_{e}.pth' for e in (3, 4, 5, 6, 7)]


@pytest.mark.slow
@pytest.mark.parametrize('flags, kept', [
    (['--ema', '0.9', '--epochs', '3', '--keep_last', '2'], 2),
    (['--optimizer', 'sgd', '--momentum', '0', '--epochs', '2', '--save_freq', '5'], 1),
])
def test_the_model_summary_states_the_checkpoint_sizes(train_argv, tmp_path, flags, kept):
    import train  # slow to import; the other tests here need none of it
    train.main(train_argv + ['--model_type', 'best', '--limit_train_batches', '1',
                             '--limit_val_batches', '1'] + flags)
    run = next((tmp_path / 'checkpoints').glob('best_*'))
    line = (run / 'model_summary.txt').read_text().splitlines()[1]
    sizes = [float(x) for x in re.findall(r'([\d.]+) MiB', line)]
    epoch, best, last, total = sizes
    files = {f: os.path.getsize(run / f) / 2 ** 20 for f in os.listdir(run) if f.endswith('.pth')}
    epochs = [f for f in files if f.startswith('epoch_')]
    assert f'({kept} kept)' in line and len(epochs) == kept
    # the estimate leaves out a few KiB of flags, metrics and zip headers
    for stated, real in [(epoch, files[epochs[0]]), (best, files['best.pth']),
                         (last, files['last.pth']), (total, sum(files.values()))]:
        assert stated <= real < stated * 1.03 + 0.1, line
    if '--ema' in flags:
        # the weights and their EMA, then Adam's two moments of the weights
        assert last == pytest.approx(2 * epoch, abs=0.1)
    else:
        assert last < epoch * 1.03 + 0.1  # SGD without momentum keeps no state
