"""Evaluating a run's best.pth on its own validation list gives the metrics and the loss that
validation logged for that epoch (the loss is what tells the barely trained cls model's
weights apart): identical with validation's batch size, within 0.001 with eval.py's default batch
size 1. For every task, plain, with --amp (eval.py takes it from the checkpoint) and with --ema
(eval.py loads the EMA weights)."""
import math

import pytest
import torch

import eval as evaluate
import train
from task.task_entry import type2task
from tests.conftest import run_name

VARIANTS = {'plain': [], 'amp': ['--amp'], 'ema': ['--ema', '0.5']}


@pytest.fixture(scope='module', params=[(t, v) for t in type2task for v in VARIANTS],
                ids='-'.join)
def best(request, task_lists, tmp_path_factory):
    """best.pth of a two-epoch run in batches of 4 (validation's 6 samples: batches of 4 and 2),
    shared by the batch sizes evaluated."""
    task, variant = request.param
    checkpoints = tmp_path_factory.mktemp('run')
    train.main(task_lists(task) + ['--checkpoints_dir', str(checkpoints), '--epochs', '2',
                                   '--batch_size', '4', '--num_workers', '0', *VARIANTS[variant]])
    return checkpoints / run_name(task) / 'best.pth'


def validated(best):
    """{metric name: value} that validation logged for best.pth's epoch, its loss included."""
    metrics = torch.load(best, weights_only=True)['metrics']
    return {k[len('val/'):]: v for k, v in metrics.items() if k.startswith('val/')}


def same(a, b, tol):
    """Equal within tol, or both nan (a class absent from the truth and the predictions)."""
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.mark.slow
@pytest.mark.parametrize('batch_size, tol', [(4, 0), (1, 1e-3)],
                         ids=['same_batches', 'batch_size_1'])
def test_eval_of_best_gives_the_metrics_validation_logged(best, batch_size, tol):
    scores = evaluate.main(['--load_model_path', str(best), '--batch_size', str(batch_size),
                            '--save_prefix', f'b{batch_size}'])
    logged = validated(best)
    assert set(scores) == set(logged)
    differ = {k: (scores[k], logged[k]) for k in logged if not same(scores[k], logged[k], tol)}
    assert not differ, f'eval.py (batch size {batch_size}) vs validation: {differ}'
