"""Checkpoint and result files. Every write goes to a temporary file that is flushed and then
renamed over the target, so a crash at any moment leaves the previous good file, never a
truncated one. Every checkpoint carries a checksum of its tensors, checked when it is loaded:
damaged weights are an error, not a wrong model."""
import errno
import hashlib
import io
import os
import pickle
import re
import uuid

import torch

from utils.errors import NO_SPACE, ConfigError, disk_error

CHECKSUM_KEY = 'tensor_sha256'  # the entry of a checkpoint that holds tensor_sha256 of the rest
ZIP_MAGIC = b'PK\x03\x04'  # how torch.save's files begin (since torch 1.6)
LEGACY_MAGIC = b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.'  # how older torch.save files begin


def atomic_write(path, write, then='then run it again'):
    """Calls write(f) on a temporary binary file beside `path`, then renames it to `path`. A full
    disk or a folder that cannot be written is a one-line ConfigError that ends with `then`, the
    way to go on once it is fixed. (Not tempfile.mkstemp: its files are private to the user, and
    results are often shared.)"""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        with open(tmp, 'xb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = disk_error(e)
        if cause is None:
            raise
        raise ConfigError(write_error_message(path, cause, then)) from None


def write_error_message(path, e, then):
    if e.errno in NO_SPACE:  # EDQUOT: the user's quota is full
        reason = '' if e.errno == errno.ENOSPC else f' ({os.strerror(e.errno)})'
        what = 'No space left on device' + reason
        return f'{what} while writing {path}: free space on that disk, {then}'
    folder = os.path.dirname(os.path.abspath(path))
    return (f'cannot write {path} ({os.strerror(e.errno)}): make {folder} writable or pass a '
            f'folder you can write to, {then}')


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(state, path):
    """`state` holds only tensors and plain Python values, so it loads with weights_only=True; a
    dict gets the checksum of its tensors. A full disk says how to go on from the run's last
    checkpoint written whole."""
    if isinstance(state, dict):
        state = {**state, CHECKSUM_KEY: tensor_sha256(state)}
    then = (f'then go on with: python train.py --resume {os.path.dirname(os.path.abspath(path))} '
            '(--keep_last N keeps only the newest N epoch_N.pth)')
    atomic_write(path, lambda f: torch.save(state, f), then)


def named_tensors(obj, where=''):
    """(key path, tensor) of every tensor in nested dicts (keys sorted: the order a dict was built
    in does not count), lists and tuples."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        # repr: keys of different types (the optimizer's ints) sort too
        for k in sorted(obj, key=repr):
            yield from named_tensors(obj[k], f'{where}/{k!r}')
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from named_tensors(v, f'{where}/{i}')


def tensor_sha256(obj):
    """sha256 of the key path, dtype, shape and bytes of every tensor in `obj`; plain values do
    not count. The bytes are read as uint8, which works for every dtype (numpy has no bfloat16)
    without a copy on the CPU."""
    digest = hashlib.sha256()
    for where, t in named_tensors(obj):
        digest.update(f'{where} {t.dtype} {tuple(t.shape)}\n'.encode())
        # others (sparse, quantized): dtype and shape only
        if t.layout == torch.strided and not t.is_quantized:
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def checked(ckpt, path, verify):
    """`ckpt` without its checksum entry, which must match its tensors when `verify`. Files
    without one (older checkpoints, bare state dicts saved elsewhere) load unchecked."""
    if not isinstance(ckpt, dict) or CHECKSUM_KEY not in ckpt:
        return ckpt
    expected = ckpt.pop(CHECKSUM_KEY)
    if verify and tensor_sha256(ckpt) != expected:
        raise ConfigError(f'{path} is damaged: its tensors differ from the checksum written '
                          'when it was saved; use another checkpoint (e.g. epoch_N.pth)')
    return ckpt


def check_readable(path, head):
    """Raises a ConfigError unless `path` is a file whose first bytes `head` begin a torch.save
    file; returns whether it is a zip file (torch.save's format since torch 1.6; older ones
    cannot be memory-mapped)."""
    if head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_MAGIC):
        return head.startswith(ZIP_MAGIC)
    what = 'empty: 0 bytes' if not head else f'it begins {head[:8]!r}'
    raise ConfigError(f'{path} is not a readable checkpoint ({what}, not a torch.save zip file): '
                      'pass a file that torch.save wrote, or another checkpoint of the run '
                      '(e.g. epoch_N.pth)')


def open_checkpoint(path, flag='--load_model_path'):
    """The open file `path`, or a ConfigError saying why a checkpoint cannot be read from it;
    `flag` named it."""
    if os.path.isdir(path):
        raise ConfigError(f'checkpoint {path} is a directory, not a file; pass a .pth file with '
                          f'{flag}, e.g. {os.path.join(path, "best.pth")}')
    if not os.path.isfile(path):
        raise ConfigError(f'checkpoint {path} does not exist; pass a .pth file with {flag}')
    try:
        return open(path, 'rb')
    except OSError as e:
        raise ConfigError(f'cannot read checkpoint {path} ({e.strerror}): '
                          'make it readable') from None


def load_checkpoint(path, mmap=False, verify=None, flag='--load_model_path'):
    """Loads a checkpoint onto the CPU and checks its tensor checksum. weights_only=True: a file
    that would run code when unpickled is refused. mmap=True maps the file instead of reading
    it, for callers that read only its args or shapes: unless verify=True, the checksum is then
    not checked, as that would read every tensor. flag: the one that named the file."""
    with open_checkpoint(path, flag) as f:
        is_zip = check_readable(path, f.read(len(LEGACY_MAGIC)))
    ckpt = unpickled(path, lambda: torch.load(path, map_location='cpu', weights_only=True,
                                              mmap=mmap and is_zip))
    return checked(ckpt, path, verify=not mmap if verify is None else verify)


def read_checkpoint(path):
    """(checkpoint, sha256 of the file) from one read of the file, so that the hash is that of
    the bytes loaded even if the file is replaced meanwhile. The tensor checksum is checked, as
    by load_checkpoint."""
    with open_checkpoint(path) as f:
        data = f.read()
    check_readable(path, data[:len(LEGACY_MAGIC)])
    ckpt = unpickled(path, lambda: torch.load(io.BytesIO(data), map_location='cpu',
                                              weights_only=True))
    return checked(ckpt, path, verify=True), hashlib.sha256(data).hexdigest()


def unpickled(path, load):
    """load(), with torch's errors turned into one line that names `path`."""
    try:
        return load()
    except pickle.UnpicklingError as e:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(e))
        if found:
            raise ConfigError(f'{path} holds more than tensors and plain values, so it was not '
                              f'loaded (it could run code): it names {found[1]}; save only '
                              'state_dict()s and plain values') from None
        raise ConfigError(f'{path} is not a readable checkpoint (its pickled part is damaged, or '
                          'holds objects that weights_only=True refuses); use another '
                          'checkpoint (e.g. epoch_N.pth)') from None
    except (RuntimeError, EOFError, OSError) as e:
        # its first sentence
        torch_says = str(e).split('. ')[0].strip().split('\n')[0] or type(e).__name__
        raise ConfigError(f'{path} is not a readable checkpoint (truncated or corrupt?): '
                          f'{torch_says}; use another checkpoint (e.g. epoch_N.pth)') from None
