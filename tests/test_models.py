"""Contract of every registered model: declares its task, builds, gives logits of its task's shape
((B, C, H, W) for seg, (B, C) for cls), trains a step, round-trips its state dict. A model added
to type2model is tested here without writing a new test."""
import pytest
import torch

from model.model_entry import equip_multi_gpu, select_model, type2model
from tests.conftest import make_args
from utils.errors import ConfigError

TASKS = ('seg', 'cls')  # what a model may serve: a class per pixel, a class per image


def build(model_type, **overrides):
    """The registered model `model_type`, with the flags of the task it serves."""
    args = make_args(model_type=model_type, task=type2model[model_type].task, **overrides)
    return select_model(args)


def per_sample(model_type, h, w):
    """The shape of one sample's target for an (h, w) input: a class per pixel, or one."""
    return {'seg': (h, w), 'cls': ()}[type2model[model_type].task]


@pytest.mark.parametrize('model_type', list(type2model))
def test_model_declares_its_task(model_type):
    assert getattr(type2model[model_type], 'task', None) in TASKS


@pytest.mark.parametrize('model_type', list(type2model))
def test_forward_shape_matches_input(model_type):
    model = build(model_type, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 40, 56))
    assert out.shape == (2, 5) + per_sample(model_type, 40, 56)


@pytest.mark.parametrize('model_type', list(type2model))
def test_one_training_step_changes_weights(model_type):
    torch.manual_seed(0)
    model = build(model_type, num_classes=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.randint(0, 4, (2,) + per_sample(model_type, 32, 32))
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), target)
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
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


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
        build(model_type)
