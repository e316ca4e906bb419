"""export.py: every registered model exports to ONNX and TorchScript and passes the check on its
validation images; the EMA weights are the ones exported; an export or a check that fails is one
line naming the op or the line of the model."""
import argparse
import hashlib
import json

import pytest
import torch
import torch.nn as nn

import export
import train
from model.model_entry import select_model, type2model
from tests.conftest import make_args, select_or_skip
from utils.checkpoint import save_checkpoint
from utils.errors import run_cli
from utils.export import NEEDS, SUFFIX, jit_warnings

FORMATS = ('onnx', 'torchscript')
# torch.export of the segmentation models takes 5-20 s each on two CPU cores (MobileNetV3: the
# most); cls_base's ONNX export and every TorchScript one (1-6 s) stay in the quick loop.
SLOW = {(name, 'onnx') for name in ('base', 'better', 'best', 'sota', 'smp_fpn')}
# What a format cannot export, and the words of its one-line error: smp's FPN decoder calls
# GroupNorm, which torch.jit.trace warns about (a Python bool of a tensor); its ONNX passes.
CANNOT = {('smp_fpn', 'torchscript'): 'TracerWarning: Converting a tensor to a Python boolean'}


def needs(fmt):
    """Skips the test unless the packages that `fmt` needs are installed (CI installs them from
    requirements-dev.txt, so there it runs)."""
    for name in NEEDS[fmt]:
        pytest.importorskip(name, reason=f'--format {fmt} needs {name}: pip install -r '
                                         'requirements-dev.txt')


def save_run(folder, task_lists, model_type, ema=False):
    """best.pth as train.py writes it (weights, `ema` with --ema, the run's args), of a model
    that was never trained: an export only needs its weights to be the ones checked."""
    task = type2model[model_type].task
    flags = task_lists(task)
    args = make_args(model_type=model_type, task=task, train_list=flags[3], val_list=flags[5])
    torch.manual_seed(0)
    model = select_or_skip(args)  # skipped when the model's package is not installed
    state = {'model': model.state_dict(), 'args': vars(args), 'epoch': 1}
    if ema:  # weights other than the raw ones, as an average of past weights would be
        state['ema'] = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                        for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, str(folder / 'best.pth'))
    return folder / 'best.pth'


def model_cases():
    return [pytest.param(name, fmt, marks=[pytest.mark.slow] if (name, fmt) in SLOW else [])
            for name in type2model for fmt in FORMATS if (name, fmt) not in CANNOT]


@pytest.mark.parametrize('model_type, fmt', model_cases())
def test_every_model_exports_and_gives_pytorchs_logits(model_type, fmt, task_lists, tmp_path):
    needs(fmt)
    best = save_run(tmp_path / 'run', task_lists, model_type)
    report = export.main(['--load_model_path', str(best), '--format', fmt,
                          '--verify_batches', '2'])
    out = tmp_path / 'run' / f'best{SUFFIX[fmt]}'
    saved = json.loads((tmp_path / 'run' / f'best{SUFFIX[fmt]}.verify.json').read_text())
    assert saved == report and report['passed'] and report['file'] == str(out)
    assert report['sha256'] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert len(report['validation_batches']) == 2 and report['weights'] == 'model'
    for check in report['validation_batches'] + [report['other_size']]:
        assert check['max_abs_diff'] <= 1e-4 and check['argmax_agreement'] == 1.0, check
    # the dynamic axes: one more image, another height and width than the first batch
    first, other = report['validation_batches'][0]['input_shape'], report['other_size']
    assert other['input_shape'][0] == first[0] + 1 and other['input_shape'][2:] != first[2:]
    assert report['dynamic_axes'] == [0, 2, 3]
    if fmt == 'onnx':
        assert report['opset'] == 18 and report['inputs'][0]['name'] == 'image'
        assert report['inputs'][0]['shape'][1] == 3 and report['outputs'][0]['name'] == 'logits'
    assert set(report['versions']) == {'torch', *NEEDS[fmt]}


@pytest.mark.parametrize('model_type, fmt', list(CANNOT))
def test_what_a_format_cannot_export_is_one_line(model_type, fmt, task_lists, tmp_path, capsys):
    needs(fmt)
    best = save_run(tmp_path, task_lists, model_type)
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: export.main(['--load_model_path', str(best), '--format', fmt]))
    err = capsys.readouterr().err
    assert stop.value.code == 1 and err.count('\n') == 1 and 'Traceback' not in err
    assert CANNOT[model_type, fmt] in err and not (tmp_path / f'best{SUFFIX[fmt]}').exists()


def run_file(path, fmt, img):
    if fmt == 'onnx':
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        return torch.from_numpy(session.run(None, {'image': img.numpy()})[0])
    with jit_warnings():
        return torch.jit.load(str(path))(img)


@pytest.mark.parametrize('fmt', FORMATS)
def test_the_ema_weights_are_exported(fmt, task_lists, tmp_path):
    needs(fmt)
    best = save_run(tmp_path, task_lists, 'cls_base', ema=True)
    out = tmp_path / 'model_file'
    report = export.main(['--load_model_path', str(best), '--format', fmt, '--out', str(out)])
    assert report['weights'] == 'ema' and (tmp_path / 'model_file.verify.json').is_file()
    ckpt = torch.load(best, weights_only=True)
    img = torch.randn(3, 3, 28, 36)
    got = run_file(out, fmt, img)
    logits = {}
    for key in ('model', 'ema'):
        model = select_model(argparse.Namespace(**ckpt['args']))
        model.load_state_dict(ckpt[key])
        with torch.no_grad():
            logits[key] = model.eval()(img)
    assert (got - logits['ema']).abs().max() <= 1e-4 < (got - logits['model']).abs().max()


@torch.library.custom_op('torchbase_test::twist', mutates_args=())
def twist(x: torch.Tensor) -> torch.Tensor:
    """An op of this test's own: ONNX has no function for it."""
    return x.flip(-1)


@twist.register_fake
def _(x):
    return torch.empty_like(x)


class Toy(nn.Module):
    """A segmentation model of one 1x1 convolution, then what the subclass does."""
    task = 'seg'

    def __init__(self, args):
        super().__init__()
        self.conv = nn.Conv2d(3, args.num_classes, 1)


class Twisted(Toy):
    def forward(self, x):
        return twist(self.conv(x))


class Branching(Toy):
    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:  # the line the errors name
            return y
        return -y


class Counting(Toy):
    """Its output moves with each call: an export records one call's count."""
    calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x) + self.calls


def run_toy(monkeypatch, task_lists, tmp_path, capsys, cls, fmt):
    """Exports a checkpoint of `cls` registered as --model_type toy; (exit code, stderr)."""
    needs(fmt)
    monkeypatch.setitem(type2model, 'toy', cls)
    best = save_run(tmp_path, task_lists, 'toy')
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: export.main(['--load_model_path', str(best), '--format', fmt]))
    return stop.value.code, capsys.readouterr().err


def test_an_op_without_an_onnx_function_is_one_line_naming_it(monkeypatch, task_lists, tmp_path,
                                                              capsys):
    code, err = run_toy(monkeypatch, task_lists, tmp_path, capsys, Twisted, 'onnx')
    assert code == 1 and err.count('\n') == 1 and 'Traceback' not in err
    assert 'opset 18 has no ONNX function for the op torchbase_test.twist' in err
    assert '--opset' in err and '--format torchscript' in err
    assert not (tmp_path / 'best.onnx').exists()


@pytest.mark.parametrize('fmt, words', [
    ('onnx', ['GuardOnDataDependentSymNode', '--format torchscript']),
    ('torchscript', ['TracerWarning: Converting a tensor to a Python boolean', '--format onnx']),
])
def test_a_branch_on_a_tensor_value_is_one_line_naming_the_line(monkeypatch, task_lists,
                                                                tmp_path, capsys, fmt, words):
    code, err = run_toy(monkeypatch, task_lists, tmp_path, capsys, Branching, fmt)
    assert code == 1 and err.count('\n') == 1 and 'Traceback' not in err
    assert f'{__file__}:' in err and '`if y.mean() > 0:  # the line the errors name`' in err
    assert 'torch.where' in err and all(w in err for w in words), err
    assert not (tmp_path / f'best{SUFFIX[fmt]}').exists()


def test_a_file_that_gives_other_logits_fails_the_check_and_says_so(monkeypatch, task_lists,
                                                                    tmp_path, capsys):
    code, err = run_toy(monkeypatch, task_lists, tmp_path, capsys, Counting, 'torchscript')
    assert code == 1 and err.count('\n') == 1
    assert 'does not give PyTorch\'s logits within --atol 0.0001' in err and 'verify.json' in err
    report = json.loads((tmp_path / 'best.torchscript.pt.verify.json').read_text())
    assert not report['passed'] and report['validation_batches'][0]['max_abs_diff'] >= 1
    assert report['validation_batches'][0]['argmax_agreement'] == 1.0  # a shift of all logits


def test_missing_onnx_packages_are_named_with_the_install_command(monkeypatch, capsys):
    real = export.importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, 'find_spec',
                        lambda name: None if name == 'onnxruntime' else real(name))
    with pytest.raises(SystemExit):
        run_cli(lambda: export.main(['--format', 'onnx']))
    err = capsys.readouterr().err
    assert 'needs onnxruntime, not installed: pip install onnxruntime' in err


@pytest.mark.slow
def test_a_trained_run_with_ema_exports_its_best_checkpoint(task_argv, tmp_path):
    needs('onnx')
    train.main(task_argv('cls') + ['--epochs', '1', '--ema', '0.5'])
    best = tmp_path / 'checkpoints' / 'cls_base_exp' / 'best.pth'
    for fmt in FORMATS:
        report = export.main(['--load_model_path', str(best), '--format', fmt])
        assert report['passed'] and report['weights'] == 'ema'
        assert (best.parent / f'best{SUFFIX[fmt]}.verify.json').is_file()
