"""The Trainer's training features by their effects: gradient accumulation, clipping, EMA
(validated, saved and evaluated), early stopping, AMP, channels_last, torch.compile, and an exact
resume with all their states."""
import copy
import json
import math
import os

import pytest
import torch
import torch.nn as nn

import eval as evaluate
import train
from data.make_shapes import make_shapes
from options import prepare_train_args
from task.task_entry import type2task
from tests.conftest import make_args, monitor, run_name
from tests.test_resume import assert_same_run, flags
from tests.test_stop import stop_after
from tests.test_train_eval import mean_loss


def no_bn_model(args):
    """Without BatchNorm, accumulated gradients equal those of one big batch (BatchNorm's
    statistics would not)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, args.num_classes, 1)
    )


def trained_weights(argv, monkeypatch):
    monkeypatch.setattr(train, 'select_model', no_bn_model)
    trainer = train.Trainer(prepare_train_args(argv))
    trainer.train_per_epoch(1)
    return trainer, {k: v.clone() for k, v in trainer.raw_model.state_dict().items()}


def test_accumulating_4_batches_of_4_equals_one_batch_of_16(tmp_path, monkeypatch):
    make_shapes(str(tmp_path / 'data'), n_train=16, n_val=2, size=16, seed=0)
    argv = [
        '--train_list', str(tmp_path / 'data' / 'train.txt'),
        '--val_list', str(tmp_path / 'data' / 'val.txt'),
        '--checkpoints_dir', str(tmp_path / 'runs'),
        '--epochs', '1',
        '--optimizer', 'sgd',
        '--lr', '0.5',
    ]
    _, big = trained_weights(argv + ['--batch_size', '16'], monkeypatch)
    _, accumulated = trained_weights(
        argv + ['--batch_size', '4', '--accum_steps', '4'], monkeypatch
    )
    _, plain = trained_weights(argv + ['--batch_size', '4'], monkeypatch)  # 4 updates, not one
    for k in big:
        assert torch.allclose(big[k], accumulated[k], atol=1e-6), k
    assert not all(torch.allclose(big[k], plain[k], atol=1e-4) for k in big)


def test_a_partial_window_is_flushed_at_the_end_of_the_epoch(train_argv, monkeypatch):
    """12 samples, batches of 4, --accum_steps 2: updates after steps 2 and 3, the second from one
    batch alone."""
    argv = train_argv + ['--optimizer', 'sgd', '--lr', '0.5', '--accum_steps', '2']
    monkeypatch.setattr(train, 'select_model', no_bn_model)
    trainer = train.Trainer(prepare_train_args(argv))
    ref = copy.deepcopy(trainer.raw_model)
    trainer.train_loader.sampler.set_epoch(1)
    batches = list(trainer.train_loader)  # the order train_per_epoch(1) will see
    trainer.train_per_epoch(1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.5, momentum=0.9)
    for window in ([0, 1], [2]):
        for j in window:
            loss = nn.functional.cross_entropy(ref(batches[j][0]), batches[j][1])
            (loss / len(window)).backward()
        opt.step()
        opt.zero_grad()
    for k, v in ref.state_dict().items():
        assert torch.allclose(v, trainer.raw_model.state_dict()[k], atol=1e-6), k


def test_a_stop_waits_for_the_end_of_the_accumulation_window(train_argv, tmp_path):
    trainer = train.Trainer(prepare_train_args(train_argv + ['--accum_steps', '2']))
    trainer.stop.received = 15  # as SIGTERM would set it, before the first step
    # not 1: the gradient of step 1 alone is not saved anywhere
    assert trainer.train_per_epoch(1) == 2


def test_clip_grad_bounds_the_update(train_argv):
    """With SGD without momentum the update is lr * gradient, so its norm shows the clipped
    gradient's."""
    argv = train_argv + [
        '--optimizer', 'sgd',
        '--momentum', '0',
        '--lr', '1',
        '--clip_grad', '0.01',
    ]
    trainer = train.Trainer(prepare_train_args(argv))
    before = [p.detach().clone() for p in trainer.raw_model.parameters()]
    img, pred, label = trainer.step(next(iter(trainer.train_loader)), trainer.model)
    trainer.optimize(trainer.compute_loss(pred, label), 1, 0)
    delta = torch.cat([
        (p.detach() - b).flatten()
        for p, b in zip(trainer.raw_model.parameters(), before, strict=True)
    ])
    # the unclipped gradient norm is far larger
    assert delta.norm().item() == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize('task', list(type2task))
def test_ema_weights_are_validated_saved_and_evaluated(task_argv, tiny_data, tmp_path, monkeypatch,
                                                       task):
    train.main(task_argv(task) + ['--ema', '0.5'])
    run = tmp_path / 'checkpoints' / run_name(task)
    best = torch.load(run / 'best.pth', weights_only=True)
    assert 'ema' in best and 'model' in best
    # every weight lags behind the model's, and BatchNorm's statistics are averaged too
    averaged = [k for k in best['model'] if k.endswith(('.weight', '.running_mean'))]
    assert averaged and all(not torch.equal(best['ema'][k], best['model'][k]) for k in averaged)
    # eval.py evaluates the EMA, and finds the value validation found for best.pth
    evaluated = {}
    original = evaluate.Evaluator.eval

    def spied(self):
        evaluated.update(self.model.state_dict())
        return original(self)

    monkeypatch.setattr(evaluate.Evaluator, 'eval', spied)
    val_list = str(tiny_data[task] / 'val.txt')
    scores = evaluate.main(['--load_model_path', str(run / 'best.pth'), '--val_list', val_list])
    assert evaluated.keys() == best['ema'].keys()
    assert all(torch.equal(v, best['ema'][k]) for k, v in evaluated.items())
    assert scores[monitor(task)] == pytest.approx(best['metrics']['val/' + monitor(task)], abs=1e-6)
    result = next(run.glob('best/*/result.txt')).read_text()
    assert 'weights: ema' in result
    # and it is the EMA that validation used: the loss it logged is the EMA's, not the raw weights'
    # (a loss tells them apart where the scores of a barely trained model do not: on the tiny cls
    # data, 1e-7 from the EMA's, 6e-4 from the raw weights', relative)
    last = torch.load(run / 'last.pth', weights_only=True)
    args = make_args(task=task, val_list=val_list)
    assert last['metrics']['val/loss'] == pytest.approx(mean_loss(args, last['ema']), rel=1e-5)
    assert last['metrics']['val/loss'] != pytest.approx(mean_loss(args, last['model']), rel=1e-5)


def test_early_stop_stops_at_the_right_epoch(train_argv, tmp_path, monkeypatch):
    # best at epoch 2; epochs 3 and 4 do not improve on it
    values = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.9])
    original = train.Logger.save_curves

    def scripted(self, epoch):
        scalars = original(self, epoch)
        scalars['val/mIoU'] = next(values)
        return scalars

    monkeypatch.setattr(train.Logger, 'save_curves', scripted)
    argv = train_argv + [
        '--epochs', '6',
        '--early_stop', '2',
        '--save_prefix', 'early',
        '--save_freq', '3',
    ]
    train.main(argv)
    run = tmp_path / 'checkpoints' / 'base_early'
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 4
    # the last
    assert sorted(f for f in os.listdir(run) if f.startswith('epoch_')) == [
        'epoch_3.pth', 'epoch_4.pth'
    ]
    best = torch.load(run / 'best.pth', weights_only=True)
    assert best['epoch'] == 2 and best['metrics']['val/mIoU'] == 0.6
    status = json.loads((run / 'status.json').read_text())
    assert status['status'] == 'finished' and status['epochs_done'] == 4
    assert 'early stop after epoch 4' in status['message']
    log = (run / 'train.log').read_text()
    assert 'early stop after epoch 4: val/mIoU has not improved for 2 epochs' in log


@pytest.mark.parametrize('task', list(type2task))
@pytest.mark.parametrize('dtype, scaled', [('auto', False), ('float16', True)])
def test_amp_autocasts_the_forward_pass(task_argv, tmp_path, monkeypatch, dtype, scaled, task):
    seen = []
    original = train.Trainer.step

    def spy(self, data, model):
        out = original(self, data, model)
        seen.append(out[1].dtype)
        return out

    monkeypatch.setattr(train.Trainer, 'step', spy)
    train.main(task_argv(task) + ['--epochs', '1', '--amp', '--amp_dtype', dtype])
    # on the CPU, auto is bfloat16
    assert set(seen) == {torch.bfloat16 if dtype == 'auto' else torch.float16}
    last = torch.load(tmp_path / 'checkpoints' / run_name(task) / 'last.pth', weights_only=True)
    # float16 needs a GradScaler, whose state --resume restores
    assert bool(last['scaler']) == scaled
    assert math.isfinite(last['metrics']['train/loss'])


def test_channels_last_converts_weights_and_inputs(train_argv, monkeypatch):
    trainer = train.Trainer(prepare_train_args(train_argv + ['--channels_last']))
    conv = trainer.raw_model.encoder.levels[0][0][0].weight  # (16, 3, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    img, pred, _ = trainer.step(next(iter(trainer.train_loader)), trainer.model)
    assert img.is_contiguous(memory_format=torch.channels_last)
    plain = train.Trainer(prepare_train_args(train_argv))
    _, plain_pred, _ = plain.step(next(iter(plain.train_loader)), plain.model)
    assert torch.allclose(pred, plain_pred, atol=1e-4)  # the same model computed in another layout


def test_compile_wraps_the_model_but_not_the_checkpoint(train_argv, tmp_path, monkeypatch):
    # The eager backend: the wrapping and the checkpoints are what is tested, not inductor's code
    # generation (which takes minutes on 2 cores; scripts/benchmark.py shows it working).
    compile_ = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda model: compile_(model, backend='eager'))
    trainer = train.Trainer(prepare_train_args(train_argv + ['--compile', '--epochs', '1']))
    assert (
        type(trainer.model).__name__ == 'OptimizedModule'
        and trainer.model._orig_mod is trainer.raw_model
    )
    trainer.train()
    last = torch.load(tmp_path / 'checkpoints' / 'base_exp' / 'last.pth', weights_only=True)
    assert 'head.weight' in last['model'] and not any(
        k.startswith('_orig_mod') for k in last['model']
    )


@pytest.mark.parametrize('task', list(type2task))
def test_resume_with_every_state_equals_the_uninterrupted_run(tiny_data, tmp_path, monkeypatch,
                                                              task):
    """EMA, a plateau schedule after warmup, a float16 GradScaler and accumulation: stopped
    mid-epoch (at the end of an accumulation window) and resumed, the run ends as the
    uninterrupted one, EMA weights included."""
    extra = [
        '--ema', '0.9',
        '--scheduler', 'plateau',
        '--lr_patience', '0',
        '--warmup_epochs', '1',
        '--amp',
        '--amp_dtype', 'float16',
        '--accum_steps', '2',
    ]
    train.main(flags(tiny_data[task], tmp_path / 'straight', task=task) + extra)
    # 3 steps an epoch: epoch 2, step 2, the end of its first window
    stop_after(monkeypatch, 'optimize', 5)
    with pytest.raises(SystemExit):
        train.main(flags(tiny_data[task], tmp_path / 'stopped', task=task) + extra)
    run = tmp_path / 'stopped' / run_name(task)
    last = torch.load(run / 'last.pth', weights_only=True)
    assert (last['epoch'], last['step']) == (1, 2) and last['scaler']['scale'] > 0
    monkeypatch.undo()
    train.main(['--resume', str(run)])
    reference = tmp_path / 'straight' / run_name(task)
    assert_same_run(run, reference)
    for name in ('last.pth', 'best.pth', 'epoch_3.pth'):
        ckpt, ref = (torch.load(r / name, weights_only=True) for r in (run, reference))
        assert all(torch.equal(v, ref['ema'][k]) for k, v in ckpt['ema'].items()), name
    ckpt, ref = (torch.load(r / 'last.pth', weights_only=True) for r in (run, reference))
    assert ckpt['schedule'] == ref['schedule'] and ckpt['scaler'] == ref['scaler']
    # epochs of windows of 2 steps and 1 step
    assert ckpt['ema_updates'] == ref['ema_updates'] == 2 * 3
