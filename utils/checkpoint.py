"""Checkpoint and result files. Every write goes to a temporary file that is flushed and then renamed over
the target, so a crash at any moment leaves the previous good file, never a truncated one."""
import os
import pickle
import tempfile

import torch
import torch.nn as nn

from utils.errors import ConfigError


def atomic_write(path, write):
    """Calls write(f) on a temporary binary file beside `path`, then renames it to `path`."""
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(state, path):
    """`state` holds only tensors and plain Python values, so it loads with weights_only=True."""
    atomic_write(path, lambda f: torch.save(state, f))


def copy_file(src, dst):
    with open(src, 'rb') as f:
        data = f.read()
    atomic_write(dst, lambda f: f.write(data))


def load_checkpoint(path, mmap=False):
    """Loads a checkpoint onto the CPU. weights_only=True: a file that would run code when unpickled is refused."""
    if not os.path.isfile(path):
        raise ConfigError(f'checkpoint {path} does not exist; pass a .pth file with --load_model_path')
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        raise ConfigError(f'{path} holds more than tensors and plain values, so it was not loaded '
                          f'(it could run code): {str(e).splitlines()[0]}') from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ConfigError(f'{path} is not a readable checkpoint (truncated or corrupt?): {e}') from None


def unwrap_model(model):
    """The plain model inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, '_orig_mod'):  # what torch.compile returns
            model = model._orig_mod
        else:
            return model
