"""Seeding, the device to run on, and the model summary."""
import logging
import os
import random

import numpy as np
import torch

from utils.checkpoint import write_text
from utils.dist import is_main
from utils.errors import ConfigError

log = logging.getLogger('torchbase')


def set_seed(seed, deterministic=False):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        # cuBLAS needs this workspace setting before its first call to be deterministic.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.backends.cudnn.benchmark = False
        # warn_only: an op with no deterministic version warns instead of failing the run; the
        # warning, which names the op, goes to the run's log (utils/run_dir.setup_logging)
        torch.use_deterministic_algorithms(True, warn_only=True)


def check_gpus(gpus):
    """Raises a ConfigError unless every id in `gpus` is a visible CUDA device."""
    count = torch.cuda.device_count()
    bad = [g for g in gpus if not 0 <= g < count]
    if bad:
        seen = f'GPUs 0..{count - 1}' if count else 'no CUDA GPU'
        raise ConfigError(
            f'--gpus {" ".join(map(str, gpus))}: GPU {bad[0]} is not there '
            f'(this machine has {seen}); '
            'leave out --gpus to use one GPU if there is one, else the CPU'
        )


def get_device(args):
    """cuda:<first of --gpus>; without --gpus, the current GPU (under torchrun, that of the
    process's LOCAL_RANK) if there is one, else the CPU."""
    if args.gpus:
        check_gpus(args.gpus)
        return torch.device('cuda', args.gpus[0])
    if torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def write_model_summary(model, folder, files=''):
    """Logs the parameter count and size of `model`, and writes them with its layers into
    folder/model_summary.txt. files: a line on the checkpoint files the run will write
    (utils/logger.checkpoint_sizes)."""
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    size = sum(t.numel() * t.element_size() for t in params + list(model.buffers()))
    total = sum(p.numel() for p in params)
    line = (
        f'{type(model).__name__}: {total:,} parameters ({trainable:,} trainable), '
        f'{size / 2 ** 20:.2f} MiB of weights and buffers'
    )
    log.info(line)
    if files:
        log.info(files)
        line = f'{line}\n{files}'
    if is_main():
        write_text(os.path.join(folder, 'model_summary.txt'), f'{line}\n\n{model}\n')
