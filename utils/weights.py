"""Loading saved weights into a model: strict (every name and shape must match), or partial with
load_match_dict, and which weights of a checkpoint to use (the EMA's when it has them)."""
import json
import logging
import os

import torch

from utils.checkpoint import load_checkpoint, write_text
from utils.dist import is_main
from utils.errors import ConfigError
from utils.key_map import map_to, mapping_flags, suggest_mapping

log = logging.getLogger('torchbase')
WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # added by DataParallel / DDP and by torch.compile
LOG_KEYS = 10  # keys of each kind logged; a run's load_match_dict.json lists them all


def weights_key(ckpt):
    """The entry of a TorchBase checkpoint whose weights to use: `ema` when it was trained with
    --ema (the weights it validated and chose best.pth by), else `model`; None for a bare state
    dict."""
    if not isinstance(ckpt, dict):
        return None
    return next((key for key in ('ema', 'model') if isinstance(ckpt.get(key), dict)), None)


def get_state_dict(path, mmap=False, verify=None, flag='--load_model_path'):
    """The model weights in `path` (see weights_of). mmap, verify, flag: see load_checkpoint."""
    return weights_of(load_checkpoint(path, mmap=mmap, verify=verify, flag=flag), path)


def weights_of(ckpt, path):
    """The model weights of the checkpoint `ckpt` read from `path` (see weights_key), or a bare
    state dict, with wrapper prefixes removed so that checkpoints of wrapped models load into a
    plain one."""
    key = weights_key(ckpt)
    state = ckpt[key] if key else ckpt
    if not isinstance(state, dict):
        raise ConfigError(
            f'{path} holds a {type(state).__name__}, not model weights: pass a file of '
            "model.state_dict(), or a checkpoint dict with it as 'model'"
        )
    others = [k for k, v in state.items() if not torch.is_tensor(v)]
    if others:
        raise ConfigError(
            f'{path} holds values that are not tensors under {len(others)} of its keys, e.g. '
            f'{others[0]!r} ({type(state[others[0]]).__name__}): not model weights; pass a file '
            "of model.state_dict(), or a checkpoint dict with it as 'model'")
    clean = {}
    for k, v in state.items():
        key = k
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split('.', 1)[1]
        if key in clean:  # e.g. both `module.conv.weight` and `conv.weight`
            raise ConfigError(f'{path} holds two tensors named {key!r} once the prefixes '
                              f'{", ".join(WRAPPER_PREFIXES)} are dropped; save one model')
        clean[key] = v
    return clean


def compare_state_dicts(own, state):
    """Which keys of `state` fit the model state dict `own`: loaded, missing (in the model
    only), unexpected (in the file only), and mismatched (same name, other shape)."""
    report = {
        'loaded': [],
        'missing': [k for k in own if k not in state],
        'unexpected': [],
        'mismatched': [],
    }
    for k, v in state.items():
        if k not in own:
            report['unexpected'].append(k)
        elif own[k].shape != v.shape:
            report['mismatched'].append(f'{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}')
        else:
            report['loaded'].append(k)
    return report


def load_match_dict(model, model_path, state=None, load_into='', prefixes=()):
    """Loads every tensor of `model_path` whose name and shape match `model` (its sub-module
    `load_into`, after renaming the file's keys by --load_prefix `prefixes`); the rest keep
    their values. Returns (and logs) the report of compare_state_dicts. A file of which no
    tensor matches is an error, one of which few match a warning that shows the mapping that
    would fit it. state: the file's weights when already read."""
    state = get_state_dict(model_path) if state is None else state
    target, mapped, report = check_overlap(model, state, model_path, load_into, prefixes)
    target.load_state_dict({k: mapped[k] for k in report['loaded']}, strict=False)
    counts = ', '.join(f'{len(v)} {k}' for k, v in report.items())
    into = f' into {load_into}' if load_into else ''
    log.info(f'load_match_dict {model_path}{into}: {counts}')
    for kind in ('missing', 'unexpected', 'mismatched'):
        for k in report[kind][:LOG_KEYS]:
            log.info(f'  {kind}: {k}')
        if len(report[kind]) > LOG_KEYS:
            log.info(f'  ... {len(report[kind]) - LOG_KEYS} more {kind}')
    if len(report['loaded']) < len(state) / 2:  # pretrained weights that mostly do not fit
        log.warning(f'load_match_dict: only {len(report["loaded"])} of the {len(state)} tensors '
                    f'of {model_path} fit the model{mapping_hint(model, state, report)}')
    return report


def check_fit(model, state, path, load_into='', prefixes=()):
    """Raises a ConfigError naming the first mismatched keys unless `state` fits `model` (its
    sub-module `load_into`, after --load_prefix `prefixes`) exactly. `model` may be built on
    the meta device: only names and shapes are compared. Returns (the module to load into,
    `state` renamed to its keys)."""
    target, mapped = map_to(model, state, load_into, prefixes)
    report = compare_state_dicts(target.state_dict(), mapped)
    if report['missing'] or report['unexpected'] or report['mismatched']:
        detail = ''.join(
            f'\n  {len(report[kind])} {kind}, e.g. {", ".join(report[kind][:3])}'
            for kind in ('missing', 'unexpected', 'mismatched')
            if report[kind]
        )
        raise ConfigError(
            f"{path} does not fit the model ({type(model).__name__}):{detail}"
            f'{mapping_hint(model, state, report)}\n'
            'pass --load_not_strict to load only the tensors whose names and shapes match'
        )
    return target, mapped


def check_overlap(model, state, path, load_into='', prefixes=()):
    """(the module to load into, `state` renamed to its keys, the report of
    compare_state_dicts), or a ConfigError when not one tensor of `state`
    matches `model` by name and shape: a partial load of that would silently train from scratch
    (e.g. torchvision's resnet18 state dict into BaseModel). `model` may be on the meta
    device."""
    target, mapped = map_to(model, state, load_into, prefixes)
    own = target.state_dict()
    report = compare_state_dicts(own, mapped)
    if report['loaded']:
        return target, mapped, report
    shapes = report['mismatched']  # same name, other shape
    same_names = f'; {len(shapes)} match by name only, e.g. {shapes[0]}' if shapes else ''
    raise ConfigError(
        f'{path} matches nothing in the model ({type(model).__name__}): '
        f'--load_not_strict would load 0 of its {len(state)} tensors, '
        f'and the model would keep its initial weights{same_names}\n'
        f'  the file has {first_keys(mapped)}\n  the model has {first_keys(own)}'
        f'{mapping_hint(model, state, report)}\n'
        "pass a checkpoint of this model, or map the file's keys to the model's with "
        '--load_into and --load_prefix'
    )


def mapping_hint(model, state, report):
    """A line naming the --load_into / --load_prefix under which more tensors of `state` fit
    `model` than the report's loaded ones, and at least half of them; '' when there is none."""
    into, old, fits = suggest_mapping(model, state)
    # a mapping that fits less than half of the file is no answer: it is the wrong file
    if fits <= len(report['loaded']) or fits < len(state) / 2:
        return ''
    return f'\n  {mapping_flags(into, old)} would load {fits} of its {len(state)} tensors'


def first_keys(state, n=5):
    more = f', ... ({len(state)} in all)' if len(state) > n else ''
    return ', '.join(list(state)[:n]) + more if state else 'no tensors'


def load_model_weights(model, path, strict=True, report_dir=None, ckpt=None, load_into='',
                       prefixes=()):
    """The article's two ways to start from saved weights: strict (every key and shape must
    match) or not strict (load_match_dict, whose report goes into
    report_dir/load_match_dict.json and is returned). ckpt: the file, when already read
    (eval.py reads its checkpoint once). load_into, prefixes: --load_into and --load_prefix
    (utils/key_map.py)."""
    state = get_state_dict(path) if ckpt is None else weights_of(ckpt, path)
    if not strict:
        report = load_match_dict(model, path, state, load_into, prefixes)
        if report_dir and is_main():
            report_path = os.path.join(report_dir, 'load_match_dict.json')
            write_text(report_path, json.dumps(report, indent=2))
        return report
    target, mapped = check_fit(model, state, path, load_into, prefixes)
    target.load_state_dict(mapped)
    return None


def check_backbone(model, state, path):
    """(the backbone module, `state` renamed to its keys, their report) for --weights_backbone:
    the model's class declares where such a file goes (backbone_weights: the --load_into and
    --load_prefix that fit it). Every tensor of the backbone must come from the file; the
    file's other tensors (an ImageNet classifier) are left out. `model` may be on the meta
    device."""
    spec = getattr(type(model), 'backbone_weights', None)
    if spec is None:
        raise ConfigError(f'--weights_backbone: {type(model).__name__} declares no backbone '
                          '(a class attribute backbone_weights, as model/sota has); load the '
                          'file with --load_model_path, --load_not_strict and --load_into')
    target, mapped = map_to(model, state, spec['load_into'], spec['load_prefix'])
    report = compare_state_dicts(target.state_dict(), mapped)
    if report['missing'] or report['mismatched']:
        bad = report['missing'] + report['mismatched']
        raise ConfigError(
            f"--weights_backbone {path} does not fill {type(model).__name__}'s backbone "
            f"{spec['load_into']}: {len(report['missing'])} missing, "
            f"{len(report['mismatched'])} mismatched, e.g. {', '.join(bad[:3])}\n"
            f'  the file has {first_keys(state)}{mapping_hint(model, state, report)}\n'
            "pass the weights the model's docstring names, or load this file with "
            '--load_model_path, --load_not_strict and the --load_into / --load_prefix that fit')
    return target, mapped, report


def load_backbone(model, path):
    """--weights_backbone: fills the backbone that the model declares (check_backbone) with
    the pretrained weights in `path`."""
    state = get_state_dict(path, flag='--weights_backbone')
    target, mapped, report = check_backbone(model, state, path)
    target.load_state_dict({k: mapped[k] for k in report['loaded']})  # all of its tensors
    log.info(f"--weights_backbone {path}: {len(report['loaded'])} tensors loaded into "
             f"{type(model).backbone_weights['load_into']}, {len(report['unexpected'])} of "
             'the file left out')
