"""utils/optim.py by its effects: the optimizers, the LR schedules (against their formulas and
torch's own schedulers), the EMA formula; the optimization flags that are refused or warned of.
(How the Trainer applies them: tests/test_train_features.py.)"""
import math
import os

import pytest
import torch
import torch.nn as nn

import train
from options import prepare_train_args
from tests.conftest import make_args
from utils.errors import ConfigError
from utils.optim import LRSchedule, ModelEMA, build_optimizer


def lr_sequence(schedule, optimizer, epochs, steps, values=()):
    """The lr of every update of `epochs` epochs of `steps` steps; values: the monitored value
    after each epoch."""
    lrs = []
    for epoch in range(1, epochs + 1):
        for step in range(steps):
            schedule.set_lr(epoch, step)
            lrs.append(optimizer.param_groups[0]['lr'])
        if values:
            schedule.end_epoch(values[epoch - 1])
    return lrs


def test_optimizers_take_the_documented_flags():
    model = nn.Linear(2, 2)
    sgd = build_optimizer(
        model, make_args(optimizer='sgd', lr=0.1, momentum=0.8, weight_decay=1e-4)
    )
    assert (
        type(sgd) is torch.optim.SGD
        and sgd.defaults['momentum'] == 0.8
        and sgd.defaults['weight_decay'] == 1e-4
    )
    for name, kind in (('adam', torch.optim.Adam), ('adamw', torch.optim.AdamW)):
        opt = build_optimizer(
            model, make_args(optimizer=name, momentum=0.8, beta=0.99, weight_decay=0.05)
        )
        assert (
            type(opt) is kind
            and opt.defaults['betas'] == (0.8, 0.99)
            and opt.defaults['weight_decay'] == 0.05
        )
    # AdamW's decay is decoupled: with a zero gradient, Adam (L2 in the gradient) moves the weights
    # by about lr, AdamW by lr * weight_decay * w.
    moved = {}
    for name in ('adam', 'adamw'):
        w = nn.Parameter(torch.ones(1))
        opt = build_optimizer(
            nn.ParameterList([w]), make_args(optimizer=name, lr=0.1, weight_decay=0.5)
        )
        w.grad = torch.zeros(1)
        opt.step()
        moved[name] = 1 - w.item()
    assert (
        moved['adam'] == pytest.approx(0.1, rel=1e-3)
        and moved['adamw'] == pytest.approx(0.1 * 0.5, rel=1e-3)
    )


def test_cosine_with_warmup_follows_its_formula():
    epochs, steps, warmup, lr, min_lr = 6, 5, 2, 0.1, 0.001
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    args = make_args(scheduler='cosine', epochs=epochs, warmup_epochs=warmup, lr=lr, min_lr=min_lr)
    got = lr_sequence(LRSchedule(opt, args, steps), opt, epochs, steps)
    cosine_epochs = epochs - warmup
    expected = [
        lr * (k + 1) / (warmup * steps) if k < warmup * steps else
        min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (k / steps - warmup) / cosine_epochs)) / 2
        for k in range(epochs * steps)
    ]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[warmup * steps - 1] == pytest.approx(lr) and max(got) == pytest.approx(lr)


@pytest.mark.parametrize('name', ['cosine', 'step'])
def test_schedules_match_torch_schedulers(name):
    epochs, steps, lr = 7, 4, 0.1
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    args = make_args(
        scheduler=name, epochs=epochs, lr=lr, min_lr=0.01, lr_step_size=3, lr_gamma=0.5
    )
    got = lr_sequence(LRSchedule(opt, args, steps), opt, epochs, steps)
    ref_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    if name == 'cosine':  # stepped after every update
        ref = torch.optim.lr_scheduler.CosineAnnealingLR(
            ref_opt, T_max=epochs * steps, eta_min=0.01
        )
        expected = []
        for _ in range(epochs * steps):
            expected.append(ref_opt.param_groups[0]['lr'])
            ref_opt.step()
            ref.step()
    else:  # stepped after every epoch
        ref = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=3, gamma=0.5)
        expected = []
        for _ in range(epochs):
            expected += [ref_opt.param_groups[0]['lr']] * steps
            ref_opt.step()
            ref.step()
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize('mode', ['max', 'min'])
def test_plateau_matches_reduce_lr_on_plateau(mode):
    values = [0.5, 0.6, 0.6, 0.55, 0.58, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65, 0.64]
    values = values if mode == 'max' else [-v for v in values]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    args = make_args(
        scheduler='plateau',
        lr=0.1,
        lr_patience=1,
        lr_gamma=0.5,
        min_lr=0.02,
        monitor_mode=mode,
        monitor='val/mIoU' if mode == 'max' else 'val/loss',
    )
    got = lr_sequence(LRSchedule(opt, args, 1), opt, len(values), 1, values)
    ref_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        ref_opt, mode=mode, factor=0.5, patience=1, threshold=0, min_lr=0.02
    )
    expected = []
    for v in values:
        expected.append(ref_opt.param_groups[0]['lr'])
        ref.step(v)
    assert got == pytest.approx(expected, rel=1e-12)
    # it did lower the lr, down to --min_lr
    assert min(got) == pytest.approx(0.02) and got[0] == 0.1


def test_trainer_uses_the_schedule_and_resumes_it(train_argv, monkeypatch):
    """Every update of a real run uses the formula's lr; the logged train/lr is the last
    update's."""
    used = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        used.append(self.param_groups[0]['lr'])
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, 'step', spy)
    argv = train_argv + [
        '--epochs', '3',
        '--scheduler', 'cosine',
        '--warmup_epochs', '1',
        '--min_lr', '1e-4',
    ]
    train.main(argv)
    lr, steps = 3e-3, 3
    expected = [
        lr * (k + 1) / steps if k < steps else
        1e-4 + (lr - 1e-4) * (1 + math.cos(math.pi * (k / steps - 1) / 2)) / 2
        for k in range(9)
    ]
    assert used == pytest.approx(expected, rel=1e-12)
    run = os.path.join(train_argv[train_argv.index('--checkpoints_dir') + 1], 'base_exp')
    last = torch.load(os.path.join(run, 'last.pth'), weights_only=True)
    assert last['metrics']['train/lr'] == pytest.approx(expected[-1]) and 'schedule' in last
    assert 'schedule' not in torch.load(os.path.join(run, 'best.pth'), weights_only=True)


# min(0.75, (1 + n) / (10 + n))
@pytest.mark.parametrize('updates, decay', [(0, 0.1), (1, 2 / 11), (1000, 0.75)])
def test_model_ema_formula_includes_buffers(updates, decay):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    ema = ModelEMA(model, 0.75)
    ema.updates = updates
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    model.train()(torch.randn(4, 1, 3, 3))  # changes BatchNorm's running statistics
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    new = model.state_dict()
    for k, v in ema.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, decay * old[k] + (1 - decay) * new[k]), k
        else:
            assert torch.equal(v, new[k]), k  # num_batches_tracked: copied
    assert not torch.equal(ema.state_dict()['1.running_mean'], old['1.running_mean'])
    assert not any(p.requires_grad for p in ema.module.parameters()) and ema.updates == updates + 1


@pytest.mark.parametrize('flags, message', [
    (['--ema', '1'], r'--ema 1.0 must be in \[0, 1\): a decay'),
    (
        ['--momentum', '1.5', '--beta', '-0.1'],
        r'--momentum 1.5 must be in \[0, 1\).*\n.*--beta -0.1 must be in',
    ),
    (
        ['--lr', 'nan', '--weight_decay', '-1'],
        r'--lr nan is not a number.*\n(.*\n)*.*--weight_decay must be 0 or more',
    ),
    (['--lr_gamma', '2'], r'--lr_gamma 2.0 must be in \[0, 1\): the factor that lowers the lr'),
    (['--profile', '--fast_dev_run'], '--profile with --fast_dev_run'),
    (['--warmup_epochs', '2'], '--warmup_epochs 2.0 leaves no epoch'),
    (['--accum_steps', '0'], '--accum_steps must be positive'),
    (['--min_lr', '1'], '--min_lr 1.0 is above --lr'),
    (
        ['--clip_grad', '-1', '--early_stop', '-1'],
        '--early_stop must be 0 or more.*\n.*--clip_grad must be 0 or more',
    ),
])
def test_bad_optimization_flags_are_refused(train_argv, flags, message):
    with pytest.raises(ConfigError, match=message):
        prepare_train_args(train_argv + flags)


def test_flags_without_effect_are_warned_of(train_argv, capsys):
    prepare_train_args(
        train_argv + ['--scheduler', 'step', '--early_stop', '5', '--amp_dtype', 'float16']
    )
    shown = ''.join(capsys.readouterr())
    assert '--lr_step_size 30 >= --epochs 2: --scheduler step never lowers the lr' in shown
    assert '--early_stop 5 >= --epochs 2: it cannot stop the run early' in shown
    assert '--amp_dtype float16 without --amp: no effect' in shown


def test_resume_may_turn_early_stop_off_and_warns_of_a_stretched_cosine(
        train_argv, tmp_path, capsys):
    train.main(train_argv + ['--scheduler', 'cosine'])
    run = str(tmp_path / 'checkpoints' / 'base_exp')
    args = prepare_train_args(['--resume', run, '--epochs', '4', '--early_stop', '0'])
    assert args.epochs == 4 and args.early_stop == 0
    assert '--epochs 2 -> 4 stretches the cosine schedule' in ''.join(capsys.readouterr())
