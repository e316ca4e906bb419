"""End to end on a tiny generated dataset: train two epochs, then evaluate; check every file a
user relies on."""
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
from task.task_entry import select_task, type2task
from tests.conftest import make_args, monitor, run_name
from utils.errors import ConfigError
from utils.optim import improved
from utils.weights import get_state_dict


def read_result(path):
    with open(path) as f:
        return dict(line.rstrip('\n').split(': ', 1) for line in f)


@pytest.fixture(scope='module')
def trained_runs(task_lists, tmp_path_factory):
    """task -> the folder of one two-epoch run of it, trained on first use and shared by the tests
    of this file (they only read it or write beside it)."""
    runs = {}

    def run(task):
        if task not in runs:
            checkpoints = tmp_path_factory.mktemp(f'run_{task}') / 'checkpoints'
            train.main(task_lists(task) + ['--checkpoints_dir', str(checkpoints), '--epochs', '2',
                                           '--batch_size', '4', '--num_workers', '0',
                                           '--save_prefix', 'e2e'])
            runs[task] = checkpoints / run_name(task, 'e2e')
        return runs[task]
    return run


@pytest.fixture(scope='module')
def trained_run(trained_runs):
    """The segmentation run, for the tests of what every task does alike."""
    return trained_runs('seg')


def test_every_task_has_a_tiny_dataset(tiny_data):
    assert set(tiny_data) == set(type2task), 'tests/conftest.py tiny_data: one dataset per task'


@pytest.mark.parametrize('task', list(type2task))
def test_run_folder_contents(trained_runs, task):
    run, defaults = trained_runs(task), type2task[task].defaults
    files = set(os.listdir(run))
    assert {
        'args.json', 'command.txt', 'train.log',
        'epoch_1.pth', 'epoch_2.pth', 'best.pth', 'last.pth',
    } <= files
    assert any(f.startswith('events.out.tfevents') for f in files)
    assert (run.parent / 'latest').read_text().strip() == run.name
    log = (run / 'train.log').read_text()
    assert 'epoch 1/2' in log and 'epoch 2/2' in log

    ckpt = torch.load(run / 'last.pth', weights_only=True)  # plain values only
    assert {'model', 'optimizer', 'epoch', 'args', 'metrics', 'best_metric'} <= set(ckpt)
    assert ckpt['epoch'] == 2 and ckpt['args']['model_type'] == defaults['model_type']
    assert ckpt['args']['task'] == task
    assert not any(k.startswith(('module.', '_orig_mod.')) for k in ckpt['model'])
    best = torch.load(run / 'best.pth', weights_only=True)
    assert 'optimizer' not in best  # only last.pth, for resuming, carries it
    key, pick = defaults['monitor'], {'max': max, 'min': min}[defaults['monitor_mode']]
    assert best['metrics'][key] == best['best_metric'] == pick(
        torch.load(run / f'epoch_{e}.pth', weights_only=True)['metrics'][key] for e in (1, 2))


@pytest.mark.parametrize('task', list(type2task))
def test_tensorboard_scalars_and_images(trained_runs, task):
    run, key = trained_runs(task), type2task[task].defaults['monitor']
    acc = EventAccumulator(str(run), size_guidance={'images': 0})
    acc.Reload()
    ckpt = torch.load(run / 'epoch_2.pth', weights_only=True)
    tags = {'train/loss', 'val/loss', key, 'train/' + monitor(task), 'train/lr'}
    assert tags <= set(ckpt['metrics'])
    for tag in ckpt['metrics']:  # every value of the epoch, per-class scores included, is a curve
        assert [e.step for e in acc.Scalars(tag)] == [1, 2], tag
    assert acc.Scalars(key)[-1].value == pytest.approx(ckpt['metrics'][key])
    assert acc.Scalars('train/lr')[0].value == pytest.approx(3e-3)
    assert (
        [e.step for e in acc.Images('train/viz')]
        == [e.step for e in acc.Images('val/viz')]
        == [1, 2]
    )


def mean_loss(args, weights):
    """The task's loss of `weights` over all of args.val_list in one batch, on the CPU."""
    model = select_model(args).eval()
    model.load_state_dict(weights)
    dataset = get_dataset_by_type(args, False)
    data = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        pred = model(torch.stack([d[0] for d in data]))
        target = torch.stack([d[1] for d in data])
        return select_task(args, torch.device('cpu')).loss(pred, target).item()


@pytest.mark.parametrize('task', list(type2task))
def test_val_loss_is_the_mean_over_samples(trained_runs, tiny_data, task):
    ckpt = torch.load(trained_runs(task) / 'epoch_2.pth', weights_only=True)
    args = make_args(task=task, val_list=str(tiny_data[task] / 'val.txt'))
    # all six samples in one batch, where validation used batches of 4 and 2
    assert ckpt['metrics']['val/loss'] == pytest.approx(mean_loss(args, ckpt['model']), rel=1e-4)


@pytest.mark.parametrize('task', list(type2task))
def test_eval_writes_results_and_viz_independent_of_batch_size(trained_runs, tiny_data, task):
    run, name = trained_runs(task), monitor(task)
    common = [
        '--checkpoints_dir', str(run.parent),
        '--val_list', str(tiny_data[task] / 'val.txt'),
        '--num_workers', '0',
        '--save_viz',
        '--viz_freq', '2',
    ]
    # no --load_model_path, no --model_type: best.pth of the newest run
    scores = evaluate.main(common)
    result_dir = run / 'best' / f'{tiny_data[task].name}_val_exp'
    result = read_result(result_dir / 'result.txt')
    best = torch.load(run / 'best.pth', weights_only=True)
    # every score validation logged, per-class ones included, as eval.main returned it
    logged = {k for k in best['metrics'] if k.startswith('val/')}
    assert {f'val/{k}' for k in scores} | {'val/loss'} == logged
    for k, value in scores.items():
        assert float(result[k]) == pytest.approx(value, abs=1e-4, nan_ok=True), k
    assert result['num_samples'] == '6' and result['checkpoint'].endswith('best.pth')
    assert result['task'] == task
    assert sorted(os.listdir(result_dir / 'viz')) == ['00000.png', '00002.png', '00004.png']
    assert {'args.json', 'command.txt', 'eval.log'} <= set(os.listdir(result_dir))

    # The same metrics (one confusion matrix over the set) and the same pictures with batches of 4.
    evaluate.main(common + ['--batch_size', '4', '--save_prefix', 'b4'])
    result_b4 = read_result(run / 'best' / f'{tiny_data[task].name}_val_b4' / 'result.txt')
    assert all(result_b4[k] == result[k] for k in scores)
    assert sorted(os.listdir(run / 'best' / f'{tiny_data[task].name}_val_b4' / 'viz')) == [
        '00000.png', '00002.png', '00004.png']

    # The best checkpoint's own validation score is what eval finds on the same list
    # (tests/test_eval_matches_val.py: every score, exactly).
    assert float(result[name]) == pytest.approx(best['metrics'][f'val/{name}'], abs=1e-4)


def test_three_ways_to_start(trained_run, train_argv):
    ckpt = str(trained_run / 'best.pth')
    saved = get_state_dict(ckpt)

    fresh = train.Trainer(prepare_train_args(train_argv))
    assert not torch.equal(fresh.raw_model.head.weight, saved['head.weight'])
    assert fresh.optimizer.param_groups[0]['betas'] == (0.9, 0.999)  # (--momentum, --beta)
    # no checkpoint yet
    assert not os.path.exists(os.path.join(fresh.args.checkpoints_dir, 'latest'))

    strict = train.Trainer(prepare_train_args(train_argv + ['--load_model_path', ckpt]))
    assert all(torch.equal(v, saved[k]) for k, v in strict.raw_model.state_dict().items())

    # A model with another number of classes: all but the head is loaded.
    partial = train.Trainer(prepare_train_args(train_argv + [
        '--load_model_path', ckpt,
        '--load_not_strict',
        '--num_classes', '3',
        '--class_names', 'a', 'b', 'c',
    ]))
    state = partial.raw_model.state_dict()
    assert torch.equal(state['encoder.levels.0.0.0.weight'], saved['encoder.levels.0.0.0.weight'])
    assert state['head.weight'].shape[0] == 3


@pytest.mark.parametrize('flags, message', [
    (
        ['--monitor', 'val/miou'],
        "--monitor 'val/miou' is not recorded; choose one of val/loss, val/pixel_acc",
    ),
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
    # DataParallel runs on the CPU too: wrap as --gpus 0 1 would, and check what the checkpoint
    # holds.
    monkeypatch.setattr(train, 'equip_multi_gpu', lambda model, args: nn.DataParallel(model))
    train.main(train_argv + ['--epochs', '1', '--save_prefix', 'dp'])
    for name in ('last.pth', 'best.pth'):
        state = torch.load(tmp_path / 'checkpoints' / 'base_dp' / name, weights_only=True)['model']
        assert not any(k.startswith('module.') for k in state) and 'head.weight' in state
