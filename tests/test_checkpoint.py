"""utils/checkpoint.py: a full disk or an unwritable folder is one line and leaves no temporary
file; empty, garbage and damaged checkpoints are one line naming the file; the tensor checksum;
read_checkpoint."""
import errno
import hashlib
import io
import os
import zipfile

import pytest
import torch

import utils.checkpoint
from utils.checkpoint import (
    CHECKSUM_KEY,
    atomic_write,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    tensor_sha256,
    write_text,
)
from utils.errors import ConfigError


class FullDisk(io.FileIO):
    """A file on a disk with `room` bytes free: a write past it fails with ENOSPC, as os.write
    does."""
    room = 1000

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def full_disk(monkeypatch, room=1000, only='.pth.'):
    """Makes atomic_write's temporary files (those whose name holds `only`) FullDisk files."""
    def fake_open(path, mode='r', *args, **kwargs):
        if only in os.path.basename(path):
            f = FullDisk(path, mode.replace('b', ''))
            f.room = room
            return f
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(utils.checkpoint, 'open', fake_open, raising=False)


def state():
    return {
        'model': {'w': torch.arange(10000.0), 'half': torch.ones(3, dtype=torch.bfloat16)},
        'epoch': 1,
    }


def test_the_fake_full_disk_gives_what_torch_gives_on_a_real_one(tmp_path):
    """What torch.save raised on a 64 KiB tmpfs:
    RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598'),
    raised while handling OSError(28, 'No space left on device')."""
    with (
        pytest.raises(RuntimeError, match='unexpected pos') as e,
        FullDisk(tmp_path / 'x', 'x') as f,
    ):
        torch.save(state(), f)
    assert isinstance(e.value.__context__, OSError) and e.value.__context__.errno == errno.ENOSPC


def test_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_temporary_file(
        tmp_path, monkeypatch):
    (tmp_path / 'last.pth').write_bytes(b'the previous one')
    full_disk(monkeypatch)
    with pytest.raises(ConfigError) as e:
        save_checkpoint(state(), str(tmp_path / 'last.pth'))
    message = str(e.value)
    assert message.startswith(
        f'No space left on device while writing {tmp_path / "last.pth"}: free space'
    )
    assert '--keep_last' in message and f'python train.py --resume {tmp_path}' in message
    assert '\n' not in message and 'unexpected pos' not in message
    assert e.value.__suppress_context__  # run_cli prints the message alone
    assert (
        os.listdir(tmp_path) == ['last.pth']
        and (tmp_path / 'last.pth').read_bytes() == b'the previous one'
    )


@pytest.mark.parametrize('code, expected', [
    (errno.ENOSPC, 'No space left on device while writing'),
    (errno.EDQUOT, 'No space left on device (Disk quota exceeded) while writing'),
    (errno.EROFS, 'Read-only file system'),
    (errno.EACCES, 'Permission denied')])
def test_plain_write_errors_are_one_line(tmp_path, monkeypatch, code, expected):
    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, 'fsync', fsync)
    with pytest.raises(ConfigError, match='then run it again') as e:
        write_text(str(tmp_path / 'result.txt'), 'mIoU: 0.5\n')
    assert expected in str(e.value) and str(tmp_path / 'result.txt') in str(e.value)
    assert os.listdir(tmp_path) == []


def test_other_write_errors_keep_their_traceback(tmp_path):
    def bug(f):
        raise ValueError('a bug')

    with pytest.raises(ValueError):
        atomic_write(str(tmp_path / 'x'), bug)
    assert os.listdir(tmp_path) == []


def test_a_real_full_disk(tiny_tmpfs):
    with pytest.raises(ConfigError, match='No space left on device while writing .*epoch_1.pth'):
        save_checkpoint({'model': {'w': torch.zeros(100000)}}, str(tiny_tmpfs / 'epoch_1.pth'))
    assert os.listdir(tiny_tmpfs) == []


def good_bytes(tmp_path):
    save_checkpoint(state(), str(tmp_path / 'ok.pth'))
    return (tmp_path / 'ok.pth').read_bytes()


@pytest.mark.parametrize('mmap', [False, True])
@pytest.mark.parametrize('content, expected', [
    (b'', 'is not a readable checkpoint (empty: 0 bytes, not a torch.save zip file)'),
    (
        b'garbage garbage',
        "is not a readable checkpoint (it begins b'garbage ', not a torch.save zip file)",
    ),
    (
        None,
        'is not a readable checkpoint (truncated or corrupt?): '
        'PytorchStreamReader failed reading zip archive',
    ),
])
def test_empty_garbage_and_truncated_checkpoints_are_one_line(tmp_path, mmap, content, expected):
    path = tmp_path / 'bad.pth'
    path.write_bytes(good_bytes(tmp_path)[:500] if content is None else content)
    for load in (
        (lambda: load_checkpoint(str(path), mmap=mmap)),
        (lambda: read_checkpoint(str(path))),
    ):
        with pytest.raises(ConfigError) as e:
            load()
        assert str(e.value).startswith(f'{path} {expected}') and 'mmap' not in str(e.value)
        assert '\n' not in str(e.value)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    for load in (load_checkpoint, read_checkpoint):
        with pytest.raises(ConfigError, match=f'checkpoint {tmp_path} is a directory, not a file'):
            load(str(tmp_path))


def test_older_torch_save_format_still_loads_also_with_mmap(tmp_path):
    torch.save({'w': torch.ones(2)}, tmp_path / 'old.pth', _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(str(tmp_path / 'old.pth'), mmap=True)['w'], torch.ones(2))


def damage_a_tensor(path):
    """Flips the first byte of the first tensor and writes the zip again whole, with correct CRCs:
    torch loads it without a complaint."""
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, 'w') as z:
        for info, data in entries:
            is_first_tensor = info.filename.endswith('/data/0')
            z.writestr(info, bytes([data[0] ^ 0xFF]) + data[1:] if is_first_tensor else data)


def test_damaged_tensor_inside_an_intact_zip_is_found(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    save_checkpoint(state(), str(path))
    assert CHECKSUM_KEY in torch.load(path, weights_only=True)
    damage_a_tensor(path)
    damaged = torch.load(path, weights_only=True)  # torch alone sees nothing wrong
    assert not torch.equal(damaged['model']['w'], state()['model']['w'])
    expected = (
        f'{path} is damaged: its tensors differ from the checksum written when it was saved; '
        'use another checkpoint (e.g. epoch_N.pth)'
    )
    for load in (load_checkpoint, read_checkpoint):
        with pytest.raises(ConfigError) as e:
            load(str(path))
        assert str(e.value) == expected
    assert load_checkpoint(str(path), mmap=True)['epoch'] == 1  # reads the args only: not checked


def test_checksum_is_checked_and_removed_on_load_and_files_without_one_load_as_before(tmp_path):
    save_checkpoint(state(), str(tmp_path / 'new.pth'))
    ckpt = load_checkpoint(str(tmp_path / 'new.pth'))
    assert (
        set(ckpt) == {'model', 'epoch'}
        and torch.equal(ckpt['model']['half'], state()['model']['half'])
    )
    torch.save(state(), tmp_path / 'old.pth')
    assert set(load_checkpoint(str(tmp_path / 'old.pth'))) == {'model', 'epoch'}
    torch.save(state()['model'], tmp_path / 'bare.pth')
    assert set(load_checkpoint(str(tmp_path / 'bare.pth'))) == {'w', 'half'}


def test_tensor_sha256_covers_bytes_dtype_shape_and_names_not_dict_order():
    base = tensor_sha256(state())
    reordered = {'epoch': 1, 'model': dict(reversed(list(state()['model'].items())))}
    assert tensor_sha256(reordered) == base
    assert tensor_sha256({**state(), 'epoch': 2}) == base  # plain values are not tensors
    changes = [
        {'w': torch.arange(10000.0).double()},
        {'w': torch.arange(10000.0).reshape(100, 100)},
        {'v': torch.arange(10000.0)},
        {'w': torch.arange(10000.0).flip(0)},
        # the next bfloat16 after 1
        {'half': torch.full((3,), 1.0078125, dtype=torch.bfloat16)},
    ]
    for change in changes:
        assert tensor_sha256({**state(), 'model': {**state()['model'], **change}}) != base, change
    nested = {
        'optimizer': {'state': {0: {'exp_avg': torch.ones(2)}}, 'param_groups': [{'lr': 0.1}]},
        'rng': [{'torch': torch.zeros(3, dtype=torch.uint8)}],
        'scalar': torch.tensor(2.0),
    }
    other_rng = [{'torch': torch.ones(3, dtype=torch.uint8)}]
    assert tensor_sha256(nested) != tensor_sha256({**nested, 'rng': other_rng})


def test_read_checkpoint_hashes_the_bytes_it_loads(tmp_path):
    path = tmp_path / 'best.pth'
    save_checkpoint(state(), str(path))
    ckpt, sha256 = read_checkpoint(str(path))
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (
        set(ckpt) == {'model', 'epoch'}
        and torch.equal(ckpt['model']['w'], state()['model']['w'])
    )


def test_read_checkpoint_opens_and_reads_the_file_once(tmp_path, monkeypatch):
    path = tmp_path / 'best.pth'
    save_checkpoint(state(), str(path))
    opened = []

    def counting_open(name, mode='r', *args, **kwargs):
        opened.append(name)
        return open(name, mode, *args, **kwargs)

    monkeypatch.setattr(utils.checkpoint, 'open', counting_open, raising=False)
    monkeypatch.setattr(
        torch,
        'load',
        lambda f, **kwargs: (
            torch.serialization.load(f, **kwargs) if isinstance(f, io.BytesIO)
            else pytest.fail(f'torch.load opened {f} itself')
        ),
    )
    read_checkpoint(str(path))
    assert opened == [str(path)]
