"""Contract of every registered model: builds, gives (B, C, H, W) logits, trains a step, round-trips its
state dict. A model added to type2model is tested here without writing a new test."""
import pytest
import torch

from model.model_entry import equip_multi_gpu, select_model, type2model
from tests.conftest import make_args
from utils.errors import ConfigError


@pytest.mark.parametrize('model_type', list(type2model))
def test_forward_shape_matches_input(model_type):
    model = select_model(make_args(model_type=model_type, num_classes=5)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 40, 56))
    assert out.shape == (2, 5, 40, 56)


@pytest.mark.parametrize('model_type', list(type2model))
def test_one_training_step_changes_weights(model_type):
    torch.manual_seed(0)
    model = select_model(make_args(model_type=model_type, num_classes=4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.randint(0, 4, (2, 32, 32)))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, 'no weight changed after an optimizer step'


@pytest.mark.parametrize('model_type', list(type2model))
def test_state_dict_round_trip_gives_same_outputs(model_type, tmp_path):
    args = make_args(model_type=model_type, num_classes=3)
    model = select_model(args).eval()
    torch.save(model.state_dict(), tmp_path / 'w.pth')
    torch.manual_seed(123)  # a different initialisation, overwritten by the load
    other = select_model(args).eval()
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
        select_model(make_args(model_type=model_type))
