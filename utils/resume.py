"""Resuming a run: which flags a resumed run may change, its lock, and where it goes on. (What a
checkpoint holds: utils/train_state.py; the signals that stop a run cleanly: utils/stop.py.)"""
import argparse
import json
import logging
import os
import socket

from utils.checkpoint import load_checkpoint
from utils.dist import rank, world_size
from utils.errors import ConfigError
from utils.folder_lock import lock_folder
from utils.run_status import current_status, read_status

log = logging.getLogger('torchbase')

# Flags that --resume accepts again: they change how the run goes on, not what it computes.
# Every other flag is the experiment's, and comes from the run's checkpoint.
RESUME_FLAGS = ('epochs', 'num_workers', 'gpus', 'print_freq', 'save_freq', 'keep_last',
                'check_data', 'dist_timeout', 'detect_anomaly', 'profile', 'early_stop')


def saved_args(run_dir):
    """The args a run was started with: from its last.pth, or from args.json when it stopped
    before its first checkpoint (it then starts again at epoch 1 in the same folder). The second
    item is last.pth's epoch."""
    last = os.path.join(run_dir, 'last.pth')
    if os.path.isfile(last):
        ckpt = load_checkpoint(last, mmap=True)  # mmap: reads the args, not the tensors
        if not isinstance(ckpt, dict) or not {'args', 'epoch', 'rng'} <= set(ckpt):
            raise ConfigError(f'--resume {run_dir}: {last} is not a resumable TorchBase '
                              'checkpoint (no args, epoch, rng)')
        return ckpt['args'], ckpt['epoch']
    with open(os.path.join(run_dir, 'args.json')) as f:
        return json.load(f), 0


def load_last(run_dir):
    """The run's last.pth, or None when it stopped before writing one (it then starts again at
    epoch 1)."""
    last = os.path.join(run_dir, 'last.pth')
    if not os.path.isfile(last):
        return None
    try:
        return load_checkpoint(last)
    except ConfigError as e:  # e.g. its tensors are damaged
        raise ConfigError(f'{e}. --resume cannot go on exactly without a whole last.pth: start '
                          f'a new run from the weights of {run_dir}/epoch_N.pth or best.pth '
                          'with --load_model_path') from None


def lock_run(run_dir):
    """Takes the run folder's lock before anything else is read from it or written into it: a
    second process resuming the same run is refused, whenever it starts. A folder that is not a
    resumable run is refused first, and gets no lock file."""
    if os.path.isfile(run_dir):
        raise ConfigError(f'--resume {run_dir} is a file; pass the run folder that holds it: '
                          f'--resume {os.path.dirname(run_dir) or "."}')
    if not any(os.path.isfile(os.path.join(run_dir, f)) for f in ('last.pth', 'args.json')):
        raise ConfigError(f'--resume {run_dir}: not a run folder (no last.pth, no args.json); '
                          'pass a folder that train.py made, e.g. checkpoints/base_exp '
                          '(python -m utils.runs lists them)')
    saved_args(run_dir)  # only reads
    holder = lock_folder(run_dir)
    if holder:
        pid = holder.split()[1] if holder.startswith('pid ') else 'PID'
        raise ConfigError(f'--resume {run_dir}: the run is still running ({holder} holds its '
                          f'lock); stop it first (kill -TERM {pid} saves a resumable '
                          'checkpoint) or let it finish')


def resume_args(parser, argv, run_dir):
    """The args of the run in `run_dir`, with the flags of `argv` applied on top; raises a
    ConfigError when the folder is not a run, is still running, or when `argv` changes the
    experiment."""
    lock_run(run_dir)
    status = read_status(run_dir)
    # On this host the lock says it all (a `running` status with a live pid may be a reused pid);
    # a run on another host may hold a lock this one cannot see, if the shared filesystem does
    # not share locks
    other_host = status and status.get('host') != socket.gethostname()
    if other_host and current_status(status) == 'running':
        raise ConfigError(f'--resume {run_dir}: the run is still running (pid {status["pid"]} '
                          f'on {status["host"]}); stop it first (kill -TERM {status["pid"]} '
                          'saves a resumable checkpoint) or let it finish')
    saved, epochs_done = saved_args(run_dir)  # again, now that no other process can change it
    if saved.get('fast_dev_run'):
        raise ConfigError(f'--resume {run_dir}: a --fast_dev_run run is a check, not a run to '
                          'go on with; start one without --fast_dev_run')
    # flags not given keep the run's values
    args = parser.parse_args(argv, namespace=argparse.Namespace(**saved))
    not_compared = ('resume', 'model_dir') + RESUME_FLAGS
    changed = [k for k in saved if k not in not_compared and getattr(args, k) != saved[k]]
    if changed:
        detail = ', '.join(f'--{k} {getattr(args, k)} (the run has {saved[k]})' for k in changed)
        raise ConfigError(f'--resume continues the experiment as it was, but {detail} would '
                          f'change it: leave {"it" if len(changed) == 1 else "them"} out, or '
                          f'start a new run. Only {", ".join("--" + k for k in RESUME_FLAGS)} '
                          'may be given again')
    if epochs_done >= args.epochs == saved['epochs']:
        raise ConfigError(f'--resume {run_dir}: the run has done all the {epochs_done} epochs '
                          f'it had planned (--epochs {args.epochs}); pass --epochs N with '
                          f'N > {epochs_done} to train longer')
    if epochs_done >= args.epochs:
        raise ConfigError(f'--resume {run_dir} --epochs {args.epochs}: the run has done '
                          f'{epochs_done} epochs already (of the {saved["epochs"]} it '
                          f'planned); leave --epochs out to go on to {saved["epochs"]}, or '
                          f'pass --epochs N with N > {epochs_done}')
    args.resume = args.model_dir = run_dir
    if args.epochs != saved['epochs'] and args.scheduler == 'cosine':
        log.warning(f'warning: --epochs {saved["epochs"]} -> {args.epochs} stretches the '
                    f'cosine schedule, which ends at --epochs: the lr of epoch '
                    f'{epochs_done + 1} is not what the shorter curve had planned')
    if world_size() > 1:
        # a run begun with --gpus, resumed under torchrun: each process takes its LOCAL_RANK's GPU
        args.gpus = None
    run_path, checkpoints = os.path.abspath(run_dir), os.path.abspath(args.checkpoints_dir)
    # moved, or resumed from another folder
    if os.path.commonpath([run_path, checkpoints]) != checkpoints:
        args.checkpoints_dir = os.path.dirname(run_path)  # where `latest` goes
    return args


def resume_position(ckpt, epochs):
    """(epoch, step) to resume at, and this process's index in the checkpoint's per-process
    lists. Another number of processes shares an epoch out otherwise, so a run stopped within
    an epoch goes on at the next one."""
    before, step, stopped_in = ckpt.get('world_size', 1), ckpt['step'], ckpt['epoch'] + 1
    if before == world_size() or not step:
        return stopped_in, step, rank() if before == world_size() else 0
    if stopped_in == epochs:
        raise ConfigError(f'the run stopped within its last epoch ({stopped_in}) with {before} '
                          f'processes; with {world_size()} it can go on only at an epoch '
                          f'boundary: resume it with {before} processes, or pass '
                          f'--epochs {epochs + 1} to train longer')
    log.warning(f'The run had {before} processes, this one has {world_size()}: the position '
                f'in epoch {stopped_in} does not carry over, so training goes on at epoch '
                f'{stopped_in + 1} (from the weights saved at its step {step})')
    return stopped_in + 1, 0, 0
