"""Starting from pretrained backbone weights: --load_into and --load_prefix map a torchvision
file onto the model's encoder, the error or warning of a load that fits little names the mapping
that fits, and --weights_backbone fills the sota model's backbone. The files are made here with
weights=None: nothing is downloaded."""
import logging

import pytest
import torch
import torch.nn as nn

import train
from model.model_entry import select_model
from tests.conftest import make_args
from tests.test_bad_inputs import fails
from utils.errors import ConfigError
from utils.key_map import suggest_mapping
from utils.weights import load_backbone, load_model_weights

torchvision = pytest.importorskip('torchvision')


class EncoderNet(nn.Module):
    """A segmentation model as they are usually written: a resnet18 encoder in net.encoder and
    a head of its own."""

    def __init__(self):
        super().__init__()
        self.net = nn.Module()
        self.net.encoder = torchvision.models.resnet18(weights=None)
        self.net.encoder.fc = nn.Identity()  # no ImageNet classifier: the file's fc is left out
        self.head = nn.Conv2d(512, 3, 1)


@pytest.fixture(scope='module')
def resnet_files(tmp_path_factory):
    """torchvision's resnet18 state dict as torchvision saves it, and as detection and
    segmentation code bases save their backbones (every key under `backbone.`)."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, folder / 'resnet18.pth')
    torch.save({f'backbone.{k}': v for k, v in state.items()}, folder / 'prefixed.pth')
    return state, str(folder / 'resnet18.pth'), str(folder / 'prefixed.pth')


def assert_encoder_is(model, state):
    own = model.net.encoder.state_dict()
    assert set(own) == set(state) - {'fc.weight', 'fc.bias'}
    assert all(torch.equal(own[k], state[k]) for k in own)


@pytest.mark.parametrize('strict', [True, False])
def test_load_into_fills_the_encoder_with_the_files_tensors(resnet_files, strict):
    state, plain, prefixed = resnet_files
    model = EncoderNet()
    head = model.head.weight.clone()
    if strict:  # the file's fc is not in the encoder: strict says so
        with pytest.raises(ConfigError, match='2 unexpected, e.g. fc.weight, fc.bias'):
            load_model_weights(model, plain, load_into='net.encoder')
        return
    report = load_model_weights(model, plain, strict=False, load_into='net.encoder')
    assert report['unexpected'] == ['fc.weight', 'fc.bias']
    assert not report['missing'] and len(report['loaded']) == len(state) - 2
    assert_encoder_is(model, state)
    assert torch.equal(model.head.weight, head)  # outside the encoder: untouched


def test_load_prefix_renames_the_files_keys(resnet_files):
    state, _, prefixed = resnet_files
    model = EncoderNet()
    load_model_weights(model, prefixed, strict=False, prefixes=['backbone.=net.encoder.'])
    assert_encoder_is(model, state)
    model = EncoderNet()  # the same with the prefix dropped and the sub-module named
    load_model_weights(model, prefixed, strict=False, load_into='net.encoder',
                       prefixes=['backbone.='])
    assert_encoder_is(model, state)


@pytest.mark.parametrize('file, flags', [
    ('plain', '--load_into net.encoder'),
    ('prefixed', '--load_into net.encoder --load_prefix backbone.='),
])
def test_a_load_that_fits_nothing_names_the_mapping_that_fits(resnet_files, file, flags):
    state, plain, prefixed = resnet_files
    path = plain if file == 'plain' else prefixed
    hint = f'  {flags} would load 120 of its 122 tensors'
    with pytest.raises(ConfigError) as e:
        load_model_weights(EncoderNet(), path, strict=False)
    assert hint in str(e.value).splitlines()
    assert 'the file has' in str(e.value) and 'the model has' in str(e.value)
    with pytest.raises(ConfigError) as e:  # the strict load's error gives it too
        load_model_weights(EncoderNet(), path)
    assert hint in str(e.value).splitlines()
    # and the suggestion, followed, loads the encoder
    model = EncoderNet()
    into, old, fits = suggest_mapping(model, torch.load(path, weights_only=True))
    load_model_weights(model, path, strict=False, load_into=into,
                       prefixes=[f'{old}='] if old else [])
    assert fits == 120
    assert_encoder_is(model, state)


def test_a_load_that_fits_a_little_warns_with_the_mapping(resnet_files, tmp_path, caplog):
    state, plain, _ = resnet_files
    # a file whose fc happens to fit a model's own `fc`, and whose encoder is left unmapped
    model = EncoderNet()
    model.fc = nn.Linear(512, 1000)
    with caplog.at_level(logging.INFO, logger='torchbase'):
        report = load_model_weights(model, plain, strict=False)
    assert report['loaded'] == ['fc.weight', 'fc.bias']
    warning = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert warning[0].startswith(f'load_match_dict: only 2 of the 122 tensors of {plain} fit')
    assert '--load_into net.encoder would load 120 of its 122 tensors' in warning[0]
    # the log lists ten keys of each kind, not all 120 missing ones
    missing = [r.message for r in caplog.records if r.message.startswith('  missing: ')]
    assert len(missing) == 10
    assert any(r.message == '  ... 112 more missing' for r in caplog.records)


@pytest.mark.parametrize('into, prefix, message', [
    ('net.decoder', [], "--load_into 'net.decoder': EncoderNet has no such sub-module; its "
                        'top-level ones are net, head'),
    ('', ['backbone.'], "--load_prefix 'backbone.': write OLD=NEW"),
])
def test_bad_mapping_flags_are_clear_errors(resnet_files, into, prefix, message):
    with pytest.raises(ConfigError, match=message):
        load_model_weights(EncoderNet(), resnet_files[1], strict=False, load_into=into,
                           prefixes=prefix)


@pytest.fixture(scope='module')
def mobilenet_file(tmp_path_factory):
    torch.manual_seed(2)
    state = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    path = tmp_path_factory.mktemp('weights') / 'mobilenet_v3_large.pth'
    torch.save(state, path)
    return state, str(path)


def test_weights_backbone_fills_the_sota_backbone(mobilenet_file):
    state, path = mobilenet_file
    model = select_model(make_args(model_type='sota'))
    head = model.net.classifier.state_dict()
    load_backbone(model, path)
    own = model.net.backbone.state_dict()
    assert len(own) == 308  # all of it: the file's 4 classifier tensors are left out
    assert all(torch.equal(v, state[f'features.{k}']) for k, v in own.items())
    assert all(torch.equal(v, head[k]) for k, v in model.net.classifier.state_dict().items())


def test_weights_backbone_errors_before_the_run_folder_is_made(
        mobilenet_file, resnet_files, train_argv, tmp_path, capsys):
    argv = train_argv + ['--model_type', 'sota', '--weights_backbone', resnet_files[1]]
    err = fails(train.main, argv, capsys)
    assert f"--weights_backbone {resnet_files[1]} does not fill SotaModel's backbone " \
           'net.backbone: 308 missing' in err
    err = fails(train.main, train_argv + ['--weights_backbone', mobilenet_file[1]], capsys)
    assert '--weights_backbone: BaseModel declares no backbone' in err
    assert not (tmp_path / 'checkpoints').exists()


def test_train_checks_the_mapping_before_the_run_folder_is_made(
        resnet_files, train_argv, tmp_path, capsys):
    argv = train_argv + ['--load_model_path', resnet_files[1], '--load_not_strict',
                         '--load_into', 'net.encoder']
    err = fails(train.main, argv, capsys)
    assert "--load_into 'net.encoder': BaseModel has no such sub-module" in err
    assert not (tmp_path / 'checkpoints').exists()


def test_torchvision_resnet18_fills_the_smp_fpn_encoder(resnet_files):
    """segmentation_models_pytorch's encoder is torchvision's resnet18 without its fc: the
    suggestion finds it, and --weights_backbone fills it with the file's tensors."""
    pytest.importorskip('segmentation_models_pytorch')
    state, plain, _ = resnet_files
    model = select_model(make_args(model_type='smp_fpn'))
    assert suggest_mapping(model, state) == ('net.encoder', '', 120)
    load_backbone(model, plain)
    own = model.net.encoder.state_dict()
    assert len(own) == 120 and all(torch.equal(v, state[k]) for k, v in own.items())


def test_files_that_are_not_plain_weights_are_one_clear_error(resnet_files, tmp_path):
    state = dict(resnet_files[0])
    state['conv1.weight'] = 3  # a value that is not a tensor
    torch.save(state, tmp_path / 'int.pth')
    with pytest.raises(ConfigError, match="values that are not tensors under 1 of its keys, "
                                          r"e.g. 'conv1.weight' \(int\)"):
        load_model_weights(EncoderNet(), str(tmp_path / 'int.pth'), strict=False)
    # two parts renamed onto one: the second would silently replace the first
    two = {**{f'a.{k}': v for k, v in resnet_files[0].items()},
           **{f'b.{k}': v for k, v in resnet_files[0].items()}}
    torch.save(two, tmp_path / 'two.pth')
    with pytest.raises(ConfigError, match="--load_prefix renames both 'a.conv1.weight' and "
                                          "'b.conv1.weight' to 'conv1.weight'"):
        load_model_weights(EncoderNet(), str(tmp_path / 'two.pth'), strict=False,
                           load_into='net.encoder', prefixes=['a.=', 'b.='])
    torch.save({'module.w': torch.zeros(1), 'w': torch.ones(1)}, tmp_path / 'both.pth')
    with pytest.raises(ConfigError, match="two tensors named 'w' once the prefixes"):
        load_model_weights(EncoderNet(), str(tmp_path / 'both.pth'), strict=False)


def test_weights_backbone_errors_name_their_flag_and_the_mapping(
        mobilenet_file, resnet_files, tmp_path):
    model = select_model(make_args(model_type='sota'))
    with pytest.raises(ConfigError, match='does not exist; pass a .pth file with '
                                          '--weights_backbone'):
        load_backbone(model, str(tmp_path / 'nothing.pth'))
    # a file whose keys carry one more prefix: the way to load it is named
    torch.save({f'backbone.{k}': v for k, v in mobilenet_file[0].items()},
               tmp_path / 'prefixed.pth')
    with pytest.raises(ConfigError) as e:
        load_backbone(model, str(tmp_path / 'prefixed.pth'))
    assert ('  --load_into net.backbone --load_prefix backbone.features.= would load 308 of its '
            '312 tensors') in str(e.value).splitlines()
    # another architecture: no mapping fits half of it, so none is offered
    with pytest.raises(ConfigError) as e:
        load_backbone(model, resnet_files[1])
    assert 'would load' not in str(e.value)


@pytest.mark.slow
def test_a_run_records_the_hash_of_the_weights_it_started_from(
        mobilenet_file, train_argv, tmp_path):
    import hashlib
    import json
    path = mobilenet_file[1]
    train.main(train_argv + ['--model_type', 'sota', '--weights_backbone', path, '--epochs', '1',
                             '--limit_train_batches', '1', '--limit_val_batches', '1'])
    info = json.loads((tmp_path / 'checkpoints' / 'sota_exp' / 'run_info.json').read_text())
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert info['start_weights'] == {'--weights_backbone': {'path': path, 'sha256': digest}}
