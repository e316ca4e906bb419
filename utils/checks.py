"""The checks made before a run or result folder exists, so that a mistake leaves nothing behind:
the flags (check_args), the inputs (check_inputs: the dataset's files, the checkpoint to load)
and, with --check_data, every sample."""
import logging
import math
import os
import tempfile

import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import load_checkpoint
from utils.errors import ConfigError
from utils.torch_utils import check_gpus
from utils.weights import check_backbone, check_fit, check_overlap, get_state_dict, weights_of

log = logging.getLogger('torchbase')


# Flags that must be above 0, and 0 or more: those of both scripts, then train.py's and eval.py's.
POSITIVE = ('batch_size', 'dist_timeout')
POSITIVE_TRAIN = ('epochs', 'lr', 'save_freq', 'print_freq', 'accum_steps', 'lr_step_size',
                  'lr_gamma')
AT_LEAST_0 = ('num_workers', 'seed', 'limit_val_batches')
AT_LEAST_0_TRAIN = ('keep_last', 'early_stop', 'warmup_epochs', 'lr_patience', 'min_lr',
                    'clip_grad', 'ema', 'weight_decay', 'overfit_batches', 'limit_train_batches')


def check_args(args, is_train):
    """Raises one ConfigError listing every problem found, so they can all be fixed at once;
    warns of flags that would have no effect."""
    problems = [f'--{k} {v} is not a number: give a finite value' for k, v in vars(args).items()
                if isinstance(v, float) and not math.isfinite(v)]
    if len(args.class_names) != args.num_classes:
        problems.append(f'--class_names has {len(args.class_names)} names for --num_classes '
                        f'{args.num_classes}')
    positive = POSITIVE + (POSITIVE_TRAIN if is_train else ('viz_freq',))
    problems += [f'--{name} must be positive, got {getattr(args, name)}'
                 for name in positive if getattr(args, name) <= 0]
    at_least_0 = AT_LEAST_0 + (AT_LEAST_0_TRAIN if is_train else ())
    problems += [f'--{name} must be 0 or more, got {getattr(args, name)}'
                 for name in at_least_0 if getattr(args, name) < 0]
    prefix = args.save_prefix
    if not prefix or os.sep in prefix or '/' in prefix or prefix == '..':
        problems.append(
            f'--save_prefix {prefix!r} names a folder: use a plain name, no "/" or ".."'
        )
    if is_train:
        problems += training_problems(args)
        warn_without_effect(args)
    if problems:
        raise ConfigError('\n  '.join(['invalid arguments:'] + problems))
    if args.gpus:
        check_gpus(args.gpus)


def training_problems(args):
    fractions = (
        ('momentum', 'the momentum of the gradient, e.g. 0.9'),
        ('beta', "Adam's beta2, e.g. 0.999"),
        ('ema', 'a decay, e.g. 0.999 (0 turns it off)'),
        ('lr_gamma', 'the factor that lowers the lr, e.g. 0.1'),
    )
    problems = [
        f'--{name} {getattr(args, name)} must be in [0, 1): {what}'
        for name, what in fractions
        if not 0 <= getattr(args, name) < 1
    ]
    if args.warmup_epochs >= args.epochs:
        problems.append(
            f'--warmup_epochs {args.warmup_epochs} leaves no epoch of '
            f'--epochs {args.epochs} after it'
        )
    crop = args.crop_size or []
    if len(crop) > 2 or any(n <= 0 for n in crop):
        problems.append(f'--crop_size {" ".join(map(str, crop))}: give H W, or one size for a '
                        'square, above 0')
    low, high = args.scale_range
    if not 0 < low <= high:
        problems.append(f'--scale_range {low} {high}: give LO HI with 0 < LO <= HI, e.g. 0.5 2.0')
    elif (low, high) != (1, 1) and not crop:
        problems.append(f'--scale_range {low} {high} needs --crop_size: a rescaled image is '
                        'cropped (or padded) to it')
    if args.min_lr > args.lr:
        problems.append(f'--min_lr {args.min_lr} is above --lr {args.lr}')
    if args.sync_bn and not torch.cuda.is_available():
        problems.append('--sync_bn needs CUDA GPUs (SyncBatchNorm does not run on the CPU): '
                        'leave it out')
    if args.monitor_mode == 'max' and args.monitor.endswith('loss'):
        problems.append(f'--monitor {args.monitor} is an error measure: add --monitor_mode min')
    if args.profile and args.fast_dev_run:
        problems.append(
            '--profile with --fast_dev_run: '
            'the trace would be deleted with the temporary run folder'
        )
    return problems


def warn_without_effect(args):
    """Legal values that do nothing, most likely by mistake."""
    warnings = [
        (
            args.scheduler == 'step' and args.lr_step_size >= args.epochs,
            f'--lr_step_size {args.lr_step_size} >= --epochs {args.epochs}: '
            '--scheduler step never lowers the lr',
        ),
        (
            args.early_stop >= args.epochs,
            f'--early_stop {args.early_stop} >= --epochs {args.epochs}: '
            'it cannot stop the run early',
        ),
        (
            args.amp_dtype != 'auto' and not args.amp,
            f'--amp_dtype {args.amp_dtype} without --amp: no effect',
        ),
    ]
    for warned, message in warnings:
        if warned:
            log.warning(f'warning: {message}')


def check_monitor(monitor, val_metrics):
    """--monitor must name a value that validation records: val/loss or one of `val_metrics`'s
    scores."""
    known = ['val/loss'] + [f'val/{name}' for name in val_metrics.compute()]
    if monitor not in known:
        raise ConfigError(
            f'--monitor {monitor!r} is not recorded; choose one of {", ".join(known)}'
        )


def check_samples(dataset):
    """--check_data: reads every sample and reports all that cannot be used, not only the first,
    with the label values found in the others (what --num_classes and --ignore_index must
    cover). Reads through the dataset's `load` when it has one: decoded and checked, without
    the augmentation that would pad labels with the ignore index."""
    read = getattr(dataset, 'load', dataset.__getitem__)
    bad, values = [], set()
    for i in tqdm(range(len(dataset)), desc='--check_data', leave=False, dynamic_ncols=True):
        try:
            _, label = read(i)
        except ConfigError as e:
            bad.append(str(e))
            continue
        if np.ndim(label) == 2:  # a label map, not a class
            values.update(np.unique(np.asarray(label)).tolist())
    if bad:
        more = f'\n  ... and {len(bad) - 20} more' if len(bad) > 20 else ''
        found = f'\n  label values found in the other samples: {sorted(values)}' if values else ''
        raise ConfigError(f'--check_data: {len(bad)} of {len(dataset)} samples cannot be used:\n  '
                          + '\n  '.join(bad[:20]) + more + found)


def check_inputs(args, is_train, classes, ckpt=None):
    """Checks what can be checked before a folder is made, so that a mistake there leaves nothing
    behind: the folders to write into, the dataset's inputs (its own check_inputs), the
    checkpoint to load (readable, plain values only, fits the model) and, with --check_data,
    every sample. classes: the model and dataset classes chosen (options.chosen_classes); ckpt:
    the checkpoint when already read (eval.py reads it once)."""
    model_class, data_class = classes[:2]
    for flag, folder in output_folders(args, is_train):
        check_writable(folder, flag)
    data_class.check_inputs(args, is_train)
    if args.load_model_path and not (is_train and args.resume):
        # mmap: no copy of the weights in memory; verify: their checksum, read through the mapping
        if ckpt is None:
            ckpt = load_checkpoint(args.load_model_path, mmap=True, verify=True)
        state = weights_of(ckpt, args.load_model_path)
        # train maps a file of other weights onto the model; eval loads its own checkpoint
        mapping = (args.load_into, args.load_prefix) if is_train else ()
        check = check_overlap if args.load_not_strict else check_fit
        check(meta_model(model_class, args), state, args.load_model_path, *mapping)
    if is_train and args.weights_backbone and not args.resume:
        path = args.weights_backbone
        state = get_state_dict(path, mmap=True, flag='--weights_backbone')
        check_backbone(meta_model(model_class, args), state, path)
    if args.check_data:
        for train_set in ([True] if is_train else []) + [False]:
            check_samples(data_class(args, train_set))


def meta_model(model_class, args):
    """The model built on the meta device: no memory, no computation; only the names and
    shapes of its tensors count."""
    with torch.device('meta'):
        return model_class(args)


# What to do when a folder the run writes into cannot be written, by the flag that names it.
UNWRITABLE_FIX = {
    '--checkpoints_dir': 'pass --checkpoints_dir a folder you can write to',
    '--resume': 'a resumed run writes into its folder: make it writable, '
                'or copy the run folder to a disk you can write to and resume the copy',
    '--load_model_path': 'eval.py makes its result folder beside the checkpoint: '
                         'pass --result_dir a folder you can write to',
    '--result_dir': 'pass --result_dir a folder you can write to',
}


def output_folders(args, is_train):
    """(flag, folder) of each folder that the run or evaluation will write into. --fast_dev_run
    writes into a temporary folder of its own."""
    if not is_train:
        return [('--result_dir', args.result_dir) if args.result_dir else
                ('--load_model_path', os.path.dirname(os.path.abspath(args.load_model_path)))]
    if args.resume:  # its checkpoints go into the run folder, `latest` into --checkpoints_dir
        return [('--resume', args.resume), ('--checkpoints_dir', args.checkpoints_dir)]
    return [] if args.fast_dev_run else [('--checkpoints_dir', args.checkpoints_dir)]


def check_writable(folder, flag):
    """Raises a ConfigError unless a file can be made in `folder` or, when it does not exist
    yet, in the folder that makedirs will make it in. By making one: os.access would miss a
    read-only folder to root, whom permission bits do not stop, and says not why."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f'{flag} {folder}: {existing} is a file, not a folder; {UNWRITABLE_FIX[flag]}'
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix='.torchbase_write_check_')
    except OSError as e:
        raise ConfigError(f'{flag} {folder}: cannot make files in {existing} ({e.strerror}); '
                          f'{UNWRITABLE_FIX[flag]}') from None
    os.close(fd)
    os.unlink(probe)
