"""Loading saved weights into a model: strict (every name and shape must match), or partial with
load_match_dict, and which weights of a checkpoint to use (the EMA's when it has them)."""
import json
import logging
import os

from utils.checkpoint import load_checkpoint, write_text
from utils.dist import is_main
from utils.errors import ConfigError

log = logging.getLogger('torchbase')
WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # added by DataParallel / DDP and by torch.compile


def weights_key(ckpt):
    """The entry of a TorchBase checkpoint whose weights to use: `ema` when it was trained with
    --ema (the weights it validated and chose best.pth by), else `model`; None for a bare state
    dict."""
    if not isinstance(ckpt, dict):
        return None
    return next((key for key in ('ema', 'model') if isinstance(ckpt.get(key), dict)), None)


def get_state_dict(path, mmap=False, verify=None):
    """The model weights in `path` (see weights_of). mmap, verify: see load_checkpoint."""
    return weights_of(load_checkpoint(path, mmap=mmap, verify=verify), path)


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
    clean = {}
    for k, v in state.items():
        while k.startswith(WRAPPER_PREFIXES):
            k = k.split('.', 1)[1]
        clean[k] = v
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


def load_match_dict(model, model_path, state=None):
    """Loads every tensor of `model_path` whose name and shape match `model`; the rest keep
    their values. Returns (and logs) the report of compare_state_dicts. A file of which no
    tensor matches is an error. state: the file's weights when already read."""
    state = get_state_dict(model_path) if state is None else state
    report = check_overlap(model, state, model_path)
    model.load_state_dict({k: state[k] for k in report['loaded']}, strict=False)
    counts = ', '.join(f'{len(v)} {k}' for k, v in report.items())
    log.info(f'load_match_dict {model_path}: ' + counts)
    for kind in ('missing', 'unexpected', 'mismatched'):
        for k in report[kind]:
            log.info(f'  {kind}: {k}')
    return report


def check_fit(model, state, path):
    """Raises a ConfigError naming the first mismatched keys unless `state` fits `model`
    exactly (which may be built on the meta device: only names and shapes are compared)."""
    report = compare_state_dicts(model.state_dict(), state)
    if report['missing'] or report['unexpected'] or report['mismatched']:
        detail = ''.join(
            f'\n  {len(report[kind])} {kind}, e.g. {", ".join(report[kind][:3])}'
            for kind in ('missing', 'unexpected', 'mismatched')
            if report[kind]
        )
        raise ConfigError(
            f"{path} does not fit the model ({type(model).__name__}):{detail}\n"
            'pass --load_not_strict to load only the tensors whose names and shapes match'
        )


def check_overlap(model, state, path):
    """The report of compare_state_dicts, or a ConfigError when not one tensor of `state`
    matches `model` by name and shape: a partial load of that would silently train from scratch
    (e.g. torchvision's resnet18 state dict into BaseModel). `model` may be on the meta
    device."""
    own = model.state_dict()
    report = compare_state_dicts(own, state)
    if report['loaded']:
        return report
    shapes = report['mismatched']  # same name, other shape
    same_names = f'; {len(shapes)} match by name only, e.g. {shapes[0]}' if shapes else ''
    raise ConfigError(
        f'{path} matches nothing in the model ({type(model).__name__}): '
        f'--load_not_strict would load 0 of its {len(state)} tensors, '
        f'and the model would keep its initial weights{same_names}\n'
        f'  the file has {first_keys(state)}\n  the model has {first_keys(own)}\n'
        'pass a checkpoint of this model, or rename its keys to the model\'s'
    )


def first_keys(state, n=5):
    more = f', ... ({len(state)} in all)' if len(state) > n else ''
    return ', '.join(list(state)[:n]) + more if state else 'no tensors'


def load_model_weights(model, path, strict=True, report_dir=None, ckpt=None):
    """The article's two ways to start from saved weights: strict (every key and shape must
    match) or not strict (load_match_dict, whose report goes into
    report_dir/load_match_dict.json and is returned). ckpt: the file, when already read
    (eval.py reads its checkpoint once)."""
    state = get_state_dict(path) if ckpt is None else weights_of(ckpt, path)
    if not strict:
        report = load_match_dict(model, path, state)
        if report_dir and is_main():
            report_path = os.path.join(report_dir, 'load_match_dict.json')
            write_text(report_path, json.dumps(report, indent=2))
        return report
    check_fit(model, state, path)
    model.load_state_dict(state)
    return None
