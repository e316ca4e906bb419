"""One process per run or result folder: a process that writes into a folder holds its lock,
so a second `--resume` of a running run is refused at once, naming the process that holds it.
With the lock held, the temporary files that a killed write left in the folder can be removed:
no one else is writing there."""
import contextlib
import logging
import os
import re
import socket
import time

from utils.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows has no lockf: folders are not locked there
    fcntl = None

log = logging.getLogger('torchbase')
# In each run and result folder: `pid N on HOST` of the process that last held it.
LOCK_FILE = '.lock'
# folder -> its open lock file. The lock lasts while the file is open; never open it twice:
# closing any file on it would release the lock.
held_locks = {}
# The temporary files of utils/checkpoint.atomic_write, while it writes.
TEMPORARY_FILE = re.compile(r'\..+\.[0-9a-f]{8}\.tmp')


def lock_folder(folder):
    """Takes the exclusive lock of `folder` for this process, or returns `pid N on HOST` of the
    process that holds it. The lock is the operating system's: it ends when the process ends,
    however it ends, so a killed run never leaves its folder locked. A POSIX lock (lockf), not
    flock: forked loader workers, which may outlive a killed run by seconds, do not inherit it,
    and network filesystems share it between machines."""
    if fcntl is None or os.path.abspath(folder) in held_locks:
        return None
    try:
        # unbuffered: a write on a full disk fails here, not later when the file is closed
        f = open(os.path.join(folder, LOCK_FILE), 'a+b', buffering=0)
    except OSError as e:
        raise cannot_write(folder, e) from None
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().decode(errors='replace').strip()
        f.close()
        return holder or 'another process'  # it may not have written its pid yet
    try:
        f.truncate(0)
        f.write(f'pid {os.getpid()} on {socket.gethostname()}\n'.encode())
    except OSError as e:  # a full disk
        f.close()
        raise cannot_write(folder, e) from None
    held_locks[os.path.abspath(folder)] = f
    return None


def cannot_write(folder, e):
    return ConfigError(f'cannot write into {folder}: {e.strerror}; a run or result folder must '
                       'be writable (check its permissions and free space)')


def unlock_folder(folder):
    held = held_locks.pop(os.path.abspath(folder), None)
    if held:
        held.close()


def release_folders():
    """Releases the locks this process holds (at the end of train.main and eval.main: tests run
    several in one process)."""
    for f in held_locks.values():
        f.close()
    held_locks.clear()


def remove_temporary_files(folder, older_than=0):
    """Removes the temporary files that a process killed while writing left in `folder` (a
    partial last.pth can be as large as a checkpoint). Call it with the folder's lock held: then
    no other process is writing there. In a folder shared by runs (checkpoints_dir, where
    `latest` is written) pass `older_than` seconds instead: such a write takes a moment, so an
    older temporary file is a leftover."""
    for entry in os.scandir(folder):
        if not TEMPORARY_FILE.fullmatch(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):  # another process removed it first
            if time.time() - entry.stat().st_mtime >= older_than:
                os.remove(entry.path)
                log.info(f'Removed {entry.name}, left by a process killed while writing it')
