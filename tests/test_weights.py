"""load_match_dict reports, strict loading errors, safe checkpoint files, and pictures."""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from model.model_entry import select_model
from tests.conftest import make_args
from utils.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from utils.errors import ConfigError
from utils.torch_utils import get_device
from utils.viz import LEGEND_ROW, TITLE_HEIGHT, colorize, make_panel
from utils.weights import load_match_dict, load_model_weights


def small(out=3):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, out, 1))


def test_load_match_dict_from_prefixed_checkpoint_reports_every_kind(tmp_path):
    src = small(out=5)
    state = {f'module.{k}': v for k, v in src.state_dict().items()}  # as saved from DataParallel
    state['module.extra.weight'] = torch.zeros(1)
    del state['module.1.running_var']
    torch.save({'model': state}, tmp_path / 'ck.pth')
    dst = small(out=3)
    head_before = dst[2].weight.clone()
    report = load_match_dict(dst, str(tmp_path / 'ck.pth'))
    assert set(report['loaded']) == {'0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean',
                                     '1.num_batches_tracked'}
    assert report['missing'] == ['1.running_var']
    assert report['unexpected'] == ['extra.weight']
    assert [m.split(':')[0] for m in report['mismatched']] == ['2.weight', '2.bias']
    assert torch.equal(dst[0].weight, src[0].weight)  # matching tensors were loaded
    assert torch.equal(dst[2].weight, head_before)  # mismatched ones kept their values


def test_strict_load_of_other_model_is_a_short_error_pointing_to_load_not_strict(tmp_path):
    torch.save({'model': small(out=5).state_dict()}, tmp_path / 'ck.pth')
    with pytest.raises(ConfigError, match='--load_not_strict') as e:
        load_model_weights(small(out=3), str(tmp_path / 'ck.pth'), strict=True)
    assert '2 mismatched, e.g. 2.weight: file (5, 4, 1, 1), model (3, 4, 1, 1)' in str(e.value)
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(200)])
    with pytest.raises(ConfigError) as e:
        load_model_weights(big, str(tmp_path / 'ck.pth'), strict=True)
    # not 400 keys, but a count
    assert '394 missing, e.g. ' in str(e.value) and len(str(e.value)) < 600


def test_strict_load_accepts_bare_state_dict_with_stacked_prefixes(tmp_path):
    src = small()
    state = {f'module._orig_mod.{k}': v for k, v in src.state_dict().items()}
    torch.save(state, tmp_path / 'bare.pth')
    dst = small()
    load_model_weights(dst, str(tmp_path / 'bare.pth'))
    assert torch.equal(dst[2].weight, src[2].weight)


class Payload:
    """Unpickling this calls open(path, 'w'): it creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_checkpoint_with_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'payload_ran'
    torch.save({'model': Payload(str(marker))}, tmp_path / 'evil.pth')
    with pytest.raises(ConfigError, match='could run code'):
        load_checkpoint(str(tmp_path / 'evil.pth'))
    assert not marker.exists()


def test_truncated_and_missing_checkpoints_are_clear_errors(tmp_path):
    save_checkpoint({'model': small().state_dict()}, str(tmp_path / 'ok.pth'))
    data = (tmp_path / 'ok.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match='truncated or corrupt'):
        load_checkpoint(str(tmp_path / 'cut.pth'))
    with pytest.raises(ConfigError, match='does not exist'):
        load_checkpoint(str(tmp_path / 'nope.pth'))
    # the atomic save left no temporary file
    assert sorted(os.listdir(tmp_path)) == ['cut.pth', 'ok.pth']


def test_device_without_gpus_is_cpu_here():
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    assert get_device(make_args(gpus=None)).type == 'cpu'
    with pytest.raises(ConfigError, match='no CUDA GPU'):
        get_device(make_args(gpus=[0, 1]))


def test_colorize_and_panel():
    label = np.array([[0, 1], [255, 12]])
    rgb = colorize(label, ignore_index=255)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[1, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() != rgb[1, 1].tolist()
    img = np.zeros((2, 2, 3), np.uint8)
    # scaled up 96 times, titled, above a legend of the 3 classes present (255 is ignored)
    assert make_panel(img, label, label).shape == (TITLE_HEIGHT + 2 * 96 + 3 * LEGEND_ROW,
                                                   3 * 2 * 96 + 8, 3)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'result.txt'
    path.write_bytes(b'old')

    def crash_halfway(f):
        f.write(b'half')
        raise RuntimeError('killed')

    with pytest.raises(RuntimeError):
        atomic_write(str(path), crash_halfway)
    assert path.read_bytes() == b'old' and os.listdir(tmp_path) == ['result.txt']


def test_partial_load_that_matches_nothing_is_an_error_showing_both_sides(tmp_path):
    torchvision = pytest.importorskip('torchvision')
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / 'resnet18.pth')
    model = select_model(make_args(model_type='base'))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as e:
        load_model_weights(
            model, str(tmp_path / 'resnet18.pth'), strict=False, report_dir=str(tmp_path)
        )
    lines = str(e.value).splitlines()
    assert lines[0].endswith(
        'matches nothing in the model (BaseModel): --load_not_strict would load 0 of its 122 '
        'tensors, and the model would keep its initial weights'
    )
    assert lines[1] == (
        '  the file has conv1.weight, bn1.weight, bn1.bias, bn1.running_mean, bn1.running_var, '
        '... (122 in all)'
    )
    model_keys = list(before)
    assert lines[2] == (
        f'  the model has {", ".join(model_keys[:5])}, ... ({len(model_keys)} in all)'
    )
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not (tmp_path / 'load_match_dict.json').exists()


def test_partial_load_where_names_match_but_no_shape_says_so(tmp_path):
    torch.save({'model': nn.Sequential(nn.Conv2d(1, 1, 1)).state_dict()}, tmp_path / 'ck.pth')
    with pytest.raises(
        ConfigError, match=r'2 match by name only, e.g. 0.weight: file \(1, 1, 1, 1\), model'
    ):
        load_match_dict(small(), str(tmp_path / 'ck.pth'))
