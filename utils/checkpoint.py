"""Checkpoint and result files. Every write goes to a temporary file that is flushed and then renamed over
the target, so a crash at any moment leaves the previous good file, never a truncated one."""
import os
import pickle
import uuid

import torch

from utils.errors import ConfigError


def atomic_write(path, write):
    """Calls write(f) on a temporary binary file beside `path`, then renames it to `path`.
    (Not tempfile.mkstemp: its files are private to the user, and results are often shared.)"""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        with open(tmp, 'xb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
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

