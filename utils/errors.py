"""ConfigError: a mistake in what the user gave (a flag, a list file, a checkpoint), as opposed
to a bug. The command-line entry points print it as one line and exit 1; a bug still shows its
full traceback."""
import errno
import logging
import os
import sys

log = logging.getLogger('torchbase')
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # EDQUOT: the user's quota is full
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
# gloo's words when a process has ended
PEER_GONE = ('Connection closed by peer', 'Connection reset by peer')


class ConfigError(Exception):
    """Raise with a message that names the bad value, what was expected and how to fix it."""


def user_message(e):
    """The message of a ConfigError. One raised in a DataLoader worker arrives re-raised with
    the worker's traceback in front of it; keep only the original message."""
    text = str(e)
    marker = 'ConfigError: '
    from_worker = 'Original Traceback' in text and marker in text
    return text.rsplit(marker, 1)[1].strip() if from_worker else text


def disk_error(e, errnos=NO_SPACE + NOT_WRITABLE):
    """The OSError of a full disk or an unwritable folder behind `e`, or None. torch.save
    reports one as a RuntimeError ('unexpected pos 2813824 vs 2813716') raised while handling
    it: look down the chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno in errnos:
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def run_cli(main):
    """Runs `main()`. A ConfigError, or a full or read-only disk, becomes `error: <message>`
    and exit status 1, Ctrl-C exit status 130; each, and the traceback of any other error, also
    goes into the log file of the run or result folder if one was made, so the folder says why
    it ended."""
    try:
        main()
    except ConfigError as e:
        # rank 0's error, raised again in the other processes: said once
        if not getattr(e, 'from_main', False):
            print(f'{rank_prefix()}error: {user_message(e)}', file=sys.stderr)
        to_log_file(f'error: {user_message(e)}')
        sys.exit(1)
    except KeyboardInterrupt:
        print('stopped by Ctrl-C', file=sys.stderr)
        to_log_file('stopped by Ctrl-C')
        sys.exit(130)
    except Exception as e:
        message = fault_message(e)
        if message is None:
            to_log_file('error:', sys.exc_info())
            raise  # Python prints the traceback and exits with 1
        print(f'{rank_prefix()}error: {message}', file=sys.stderr)
        to_log_file(f'error: {message}')
        sys.exit(1)


def fault_message(e):
    """One line for an error that is not the code's fault, or None: a full or read-only disk,
    wherever it struck (TensorBoard, a log), or under torchrun a collective whose peer process
    ended (it failed first and said why)."""
    full = disk_error(e, NO_SPACE + (errno.EROFS,))
    if full is not None:
        return (
            f'{full.strerror}: {full.filename or "a file being written"}; '
            'free space on that disk (or make it writable), '
            'then run again (a training run: python train.py --resume RUN)'
        )
    if int(os.environ.get('WORLD_SIZE', 1)) > 1 and any(words in str(e) for words in PEER_GONE):
        return 'another process ended first (its error is above), so this one stopped too'
    return None


def rank_prefix():
    """`[rank N] ` under torchrun (which sets RANK and WORLD_SIZE), so that an error names its
    process."""
    return f'[rank {os.environ["RANK"]}] ' if int(os.environ.get('WORLD_SIZE', 1)) > 1 else ''


def to_log_file(message, exc_info=None):
    """Writes `message` (and the traceback of exc_info) into the log files that setup_logging
    opened, if any."""
    record = logging.LogRecord(log.name, logging.ERROR, __file__, 0, message, None, exc_info)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
