"""Model loading (strict, or partial with load_match_dict), seeding and device choice."""
import logging
import random

import numpy as np
import torch

from utils.checkpoint import load_checkpoint
from utils.errors import ConfigError

log = logging.getLogger('torchbase')
WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # added by DataParallel / DDP and by torch.compile


def get_state_dict(path):
    """The model weights in `path`: a TorchBase checkpoint's 'model' entry, or a bare state dict, with
    wrapper prefixes removed so that checkpoints of wrapped models load into a plain one."""
    ckpt = load_checkpoint(path)
    state = ckpt['model'] if isinstance(ckpt.get('model'), dict) else ckpt
    clean = {}
    for k, v in state.items():
        while k.startswith(WRAPPER_PREFIXES):
            k = k.split('.', 1)[1]
        clean[k] = v
    return clean


def load_match_dict(model, model_path):
    """Loads every tensor of `model_path` whose name and shape match `model`; the rest keep their values.
    Returns (and logs) the report: loaded, missing (in the model only), unexpected (in the file only),
    and mismatched (same name, other shape) keys."""
    own = model.state_dict()
    state = get_state_dict(model_path)
    report = {'loaded': [], 'missing': [], 'unexpected': [], 'mismatched': []}
    for k, v in state.items():
        if k not in own:
            report['unexpected'].append(k)
        elif own[k].shape != v.shape:
            report['mismatched'].append(f'{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}')
        else:
            report['loaded'].append(k)
    report['missing'] = [k for k in own if k not in state]
    model.load_state_dict({k: state[k] for k in report['loaded']}, strict=False)
    log.info(f'load_match_dict {model_path}: ' + ', '.join(f'{len(v)} {k}' for k, v in report.items()))
    for kind in ('missing', 'unexpected', 'mismatched'):
        for k in report[kind]:
            log.info(f'  {kind}: {k}')
    return report


def load_model_weights(model, path, strict=True):
    """The article's two ways to start from saved weights: strict (every key and shape must match) or
    not strict (load_match_dict)."""
    if not strict:
        return load_match_dict(model, path)
    try:
        model.load_state_dict(get_state_dict(path))
    except RuntimeError as e:
        detail = '\n'.join(str(e).splitlines()[:4])
        raise ConfigError(f'{path} does not fit this model:\n{detail}\npass --load_not_strict to load only the '
                          'tensors whose names and shapes match') from None


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def check_gpus(gpus):
    """Raises a ConfigError unless every id in `gpus` is a visible CUDA device."""
    count = torch.cuda.device_count()
    bad = [g for g in gpus if not 0 <= g < count]
    if bad:
        seen = f'GPUs 0..{count - 1}' if count else 'no CUDA GPU'
        raise ConfigError(f'--gpus {" ".join(map(str, gpus))}: GPU {bad[0]} is not there (this machine has {seen}); '
                          'leave out --gpus to use one GPU if there is one, else the CPU')


def get_device(args):
    """cuda:<first of --gpus>; without --gpus, the first GPU if there is one, else the CPU."""
    if args.gpus:
        check_gpus(args.gpus)
        return torch.device('cuda', args.gpus[0])
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
