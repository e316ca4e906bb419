"""End to end on a tiny generated dataset: train two epochs, then evaluate; check every file a user relies on."""
import os

import pytest
import torch
import torch.nn as nn
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import eval as evaluate
import train
from data.data_entry import get_dataset_by_type
from model.model_entry import select_model
from options import prepare_train_args
from tests.conftest import make_args
from utils.errors import ConfigError
from utils.optim import improved
from utils.weights import get_state_dict


def read_result(path):
    with open(path) as f:
        return dict(line.rstrip('\n').split(': ', 1) for line in f)


@pytest.fixture(scope='module')
def trained_run(shapes, tmp_path_factory):
    """One two-epoch run shared by the tests of this file (they only read it or write beside it)."""
    checkpoints = tmp_path_factory.mktemp('run') / 'checkpoints'
    train.main(['--train_list', str(shapes / 'train.txt'), '--val_list', str(shapes / 'val.txt'),
                '--checkpoints_dir', str(checkpoints), '--epochs', '2', '--batch_size', '4', '--num_workers', '0',
                '--save_prefix', 'e2e'])
    return checkpoints / 'base_e2e'


def test_run_folder_contents(trained_run):
    files = set(os.listdir(trained_run))
    assert {'args.json', 'command.txt', 'train.log', 'epoch_1.pth', 'epoch_2.pth', 'best.pth', 'last.pth'} <= files
    assert any(f.startswith('events.out.tfevents') for f in files)
    assert (trained_run.parent / 'latest').read_text().strip() == 'base_e2e'
    log = (trained_run / 'train.log').read_text()
    assert 'epoch 1/2' in log and 'epoch 2/2' in log

    ckpt = torch.load(trained_run / 'last.pth', weights_only=True)  # plain values only
    assert {'model', 'optimizer', 'epoch', 'args', 'metrics', 'best_metric'} <= set(ckpt)
    assert ckpt['epoch'] == 2 and ckpt['args']['model_type'] == 'base'
    assert not any(k.startswith(('module.', '_orig_mod.')) for k in ckpt['model'])
    best = torch.load(trained_run / 'best.pth', weights_only=True)
    assert 'optimizer' not in best  # only last.pth, for resuming, carries it
    assert best['metrics']['val/mIoU'] == best['best_metric'] == max(
        torch.load(trained_run / f'epoch_{e}.pth', weights_only=True)['metrics']['val/mIoU'] for e in (1, 2))


def test_tensorboard_scalars_and_images(trained_run):
    acc = EventAccumulator(str(trained_run), size_guidance={'images': 0})
    acc.Reload()
    for tag in ('train/loss', 'val/loss', 'val/mIoU', 'val/pixel_acc', 'train/mIoU', 'train/lr',
                'val/IoU_circle'):
        assert [e.step for e in acc.Scalars(tag)] == [1, 2], tag
    ckpt = torch.load(trained_run / 'epoch_2.pth', weights_only=True)
    assert acc.Scalars('val/mIoU')[-1].value == pytest.approx(ckpt['metrics']['val/mIoU'])
    assert acc.Scalars('train/lr')[0].value == pytest.approx(3e-3)
    assert [e.step for e in acc.Images('train/viz')] == [e.step for e in acc.Images('val/viz')] == [1, 2]


def test_val_loss_is_the_mean_over_samples(trained_run, shapes):
    ckpt = torch.load(trained_run / 'epoch_2.pth', weights_only=True)
    args = make_args(val_list=str(shapes / 'val.txt'))
    model = select_model(args).eval()
    model.load_state_dict(ckpt['model'])
    data = [get_dataset_by_type(args, False)[i] for i in range(6)]
    with torch.no_grad():  # all six samples in one batch, where validation used batches of 4 and 2
        loss = nn.functional.cross_entropy(model(torch.stack([d[0] for d in data])), torch.stack([d[1] for d in data]))
    assert ckpt['metrics']['val/loss'] == pytest.approx(loss.item(), rel=1e-4)


def test_eval_writes_results_and_viz_independent_of_batch_size(trained_run, shapes):
    common = ['--checkpoints_dir', str(trained_run.parent), '--val_list', str(shapes / 'val.txt'),
              '--num_workers', '0', '--save_viz', '--viz_freq', '2']
    scores = evaluate.main(common)  # no --load_model_path, no --model_type: best.pth of the newest run
    result_dir = trained_run / 'best' / 'shapes_val_exp'
    result = read_result(result_dir / 'result.txt')
    assert float(result['mIoU']) == pytest.approx(scores['mIoU'], abs=1e-4)
    for name in ('background', 'circle', 'rectangle', 'triangle'):
        assert f'IoU_{name}' in result
    assert 0 <= float(result['pixel_acc']) <= 1
    assert result['num_samples'] == '6' and result['checkpoint'].endswith('best.pth')
    assert sorted(os.listdir(result_dir / 'viz')) == ['00000.png', '00002.png', '00004.png']
    assert {'args.json', 'command.txt', 'eval.log'} <= set(os.listdir(result_dir))

    # The same metrics (one confusion matrix over the set) and the same pictures with batches of 4.
    evaluate.main(common + ['--batch_size', '4', '--save_prefix', 'b4'])
    result_b4 = read_result(trained_run / 'best' / 'shapes_val_b4' / 'result.txt')
    assert result_b4['mIoU'] == result['mIoU'] and result_b4['pixel_acc'] == result['pixel_acc']
    assert sorted(os.listdir(trained_run / 'best' / 'shapes_val_b4' / 'viz')) == ['00000.png', '00002.png',
                                                                                 '00004.png']

    # The best checkpoint's own validation score is what eval finds on the same list.
    best = torch.load(trained_run / 'best.pth', weights_only=True)
    assert float(result['mIoU']) == pytest.approx(best['metrics']['val/mIoU'], abs=1e-4)


def test_three_ways_to_start(trained_run, train_argv):
    ckpt = str(trained_run / 'best.pth')
    saved = get_state_dict(ckpt)

    fresh = train.Trainer(prepare_train_args(train_argv))
    assert not torch.equal(fresh.raw_model.head.weight, saved['head.weight'])
    assert fresh.optimizer.param_groups[0]['betas'] == (0.9, 0.999)  # (--momentum, --beta)
    assert not os.path.exists(os.path.join(fresh.args.checkpoints_dir, 'latest'))  # no checkpoint yet

    strict = train.Trainer(prepare_train_args(train_argv + ['--load_model_path', ckpt]))
    assert all(torch.equal(v, saved[k]) for k, v in strict.raw_model.state_dict().items())

    # A model with another number of classes: all but the head is loaded.
    partial = train.Trainer(prepare_train_args(train_argv + [
        '--load_model_path', ckpt, '--load_not_strict', '--num_classes', '3', '--class_names', 'a', 'b', 'c']))
    state = partial.raw_model.state_dict()
    assert torch.equal(state['encoder.levels.0.0.0.weight'], saved['encoder.levels.0.0.0.weight'])
    assert state['head.weight'].shape[0] == 3


@pytest.mark.parametrize('flags, message', [
    (['--monitor', 'val/miou'], "--monitor 'val/miou' is not recorded; choose one of val/loss, val/pixel_acc"),
    (['--train_list', 'missing.txt'], 'list file missing.txt does not exist'),
    (['--model_type', 'better', '--load_model_path', '{best}'], 'does not fit the model'),
    (['--data_type', 'mem_list', '--num_classes', '2', '--class_names', 'a', 'b'], 'holds class'),
])
def test_a_run_that_cannot_start_leaves_nothing(trained_run, shapes, flags, message):
    checkpoints = trained_run.parent
    before = sorted(os.listdir(checkpoints))
    argv = ['--train_list', str(shapes / 'train.txt'), '--val_list', str(shapes / 'val.txt'),
            '--checkpoints_dir', str(checkpoints), '--num_workers', '0']
    with pytest.raises(ConfigError, match=message):
        train.main(argv + [f.format(best=trained_run / 'best.pth') for f in flags])
    assert sorted(os.listdir(checkpoints)) == before
    assert (checkpoints / 'latest').read_text().strip() == 'base_e2e'


def test_an_evaluation_that_cannot_start_leaves_nothing(trained_run):
    with pytest.raises(ConfigError, match='does not fit the model'):
        evaluate.main(['--load_model_path', str(trained_run / 'last.pth'), '--model_type', 'best'])
    assert not (trained_run / 'last').exists()


def test_improved_by_mode():
    for mode, values in (('max', [0.5, 0.5, 0.4, 0.6]), ('min', [0.5, 0.5, 0.6, 0.4])):
        best, seen = None, []
        for v in values:
            seen.append(improved(v, best, mode))
            best = v if seen[-1] else best
        assert seen == [True, False, False, True] and best == values[-1]


def test_checkpoints_of_a_wrapped_model_have_no_prefix(train_argv, tmp_path, monkeypatch):
    # DataParallel runs on the CPU too: wrap as --gpus 0 1 would, and check what the checkpoint holds.
    monkeypatch.setattr(train, 'equip_multi_gpu', lambda model, args: nn.DataParallel(model))
    train.main(train_argv + ['--epochs', '1', '--save_prefix', 'dp'])
    for name in ('last.pth', 'best.pth'):
        state = torch.load(tmp_path / 'checkpoints' / 'base_dp' / name, weights_only=True)['model']
        assert not any(k.startswith('module.') for k in state) and 'head.weight' in state
