"""Contract of every registered model: declares its task, builds, gives logits of its task's shape
((B, C, H, W) for seg, (B, C) for cls) at the demo data's image size and at an odd one, trains a
step, round-trips its state dict. Models run as the tasks run them, padded to their
input_multiple (utils/input_size.py). A model added to type2model is tested here without writing
a new test."""
import inspect
import sys

import pytest
import torch

from data.make_shapes import make_shapes
from data.make_shapes_cls import make_shapes_cls
from model.model_entry import equip_multi_gpu, select_model, type2model
from tests.conftest import make_args, select_or_skip
from utils.errors import ConfigError
from utils.input_size import input_multiple, padded_forward

TASKS = ('seg', 'cls')  # what a model may serve: a class per pixel, a class per image
ODD_SIZE = (45, 61)  # (H, W), odd: no even input_multiple divides them, as a photo's may not


def build(model_type, **overrides):
    """The registered model `model_type`, with the flags of the task it serves; the test is
    skipped when the model's package is not installed."""
    args = make_args(model_type=model_type, task=type2model[model_type].task, **overrides)
    return select_or_skip(args)


def demo_size(model_type):
    """(H, W) of the images of the demo data of the model's task: what a first run feeds it."""
    make = {'seg': make_shapes, 'cls': make_shapes_cls}[type2model[model_type].task]
    size = inspect.signature(make).parameters['size'].default
    return size, size


def run(model, model_type, x):
    """The model's logits of `x` as the tasks compute them: padded to its rule, cut back."""
    return padded_forward(model, x, crop=type2model[model_type].task == 'seg')


def per_sample(model_type, h, w):
    """The shape of one sample's target for an (h, w) input: a class per pixel, or one."""
    return {'seg': (h, w), 'cls': ()}[type2model[model_type].task]


@pytest.mark.parametrize('model_type', list(type2model))
def test_model_declares_its_task(model_type):
    assert getattr(type2model[model_type], 'task', None) in TASKS


@pytest.mark.parametrize('model_type', list(type2model))
@pytest.mark.parametrize('size', ['demo', ODD_SIZE], ids=['demo', 'odd'])
def test_forward_shape_matches_input(model_type, size):
    h, w = demo_size(model_type) if size == 'demo' else size
    model = build(model_type, num_classes=5).eval()
    with torch.no_grad():
        out = run(model, model_type, torch.randn(2, 3, h, w))
    assert out.shape == (2, 5) + per_sample(model_type, h, w)


@pytest.mark.parametrize('model_type', list(type2model))
def test_input_multiple_is_a_whole_number(model_type):
    assert input_multiple(build(model_type)) >= 1


@pytest.mark.parametrize('model_type', list(type2model))
def test_one_training_step_changes_weights(model_type):
    torch.manual_seed(0)
    model = build(model_type, num_classes=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h, w = demo_size(model_type)
    target = torch.randint(0, 4, (2,) + per_sample(model_type, h, w))
    loss = torch.nn.functional.cross_entropy(run(model, model_type, torch.randn(2, 3, h, w)),
                                             target)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = [
        k for k, v in model.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert changed, 'no weight changed after an optimizer step'


@pytest.mark.parametrize('model_type', list(type2model))
def test_state_dict_round_trip_gives_same_outputs(model_type, tmp_path):
    model = build(model_type, num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / 'w.pth')
    torch.manual_seed(123)  # a different initialisation, overwritten by the load
    other = build(model_type, num_classes=3).eval()
    other.load_state_dict(torch.load(tmp_path / 'w.pth', weights_only=True))
    x = torch.randn(1, 3, *demo_size(model_type))
    with torch.no_grad():
        assert torch.equal(run(model, model_type, x), run(other, model_type, x))


def test_a_model_whose_package_is_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'segmentation_models_pytorch', None)  # as if not installed
    with pytest.raises(ConfigError, match='smp_fpn needs segmentation_models_pytorch .*: pip '
                                          'install segmentation-models-pytorch'):
        select_model(make_args(model_type='smp_fpn'))


def test_unknown_model_type_lists_valid_names():
    with pytest.raises(ConfigError, match=', '.join(type2model)):
        select_model(make_args(model_type='nope'))


def test_registry_holds_classes_not_built_models():
    assert all(isinstance(cls, type) for cls in type2model.values())


def test_equip_multi_gpu_keeps_model_without_several_gpus():
    model = torch.nn.Linear(2, 2)
    assert equip_multi_gpu(model, make_args(gpus=None)) is model


def test_no_model_downloads_weights(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('a model tried to download weights')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', refuse)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)
    for model_type in type2model:
        try:
            build(model_type)
        except pytest.skip.Exception:  # its package is not installed: nothing to download
            pass
