"""Every flag of train.py and eval.py (every args.X used anywhere is declared here). parse_common_args declares
those both need, so none is given at training time and forgotten at test time. prepare_train_args /
prepare_test_args parse and check the flags, create the run or result folder, save the args and start its log."""
import argparse
import logging
import os
import sys

import torch
from tqdm import tqdm

from data.data_entry import get_dataset_by_type, type2data
from data.list_dataset import ListDataset, read_list
from data.make_shapes import CLASS_NAMES, DEMO_DIR, ensure_demo_data
from loss import type2loss
from model.model_entry import select_model, type2model
from utils.checkpoint import load_checkpoint
from utils.dist import init_distributed, is_main, on_main
from utils.errors import ConfigError
from utils.provenance import write_run_info
from utils.resume import resume_args
from utils.run_dir import close_logging, make_run_dir, read_latest, save_args, save_command, setup_logging
from utils.torch_utils import check_fit, check_gpus, get_state_dict

# The flags that define the model. eval.py takes them from the checkpoint unless its command line gives them.
# EDIT ME: add every flag your model's __init__ reads.
MODEL_ARGS = ('model_type', 'num_classes', 'class_names')
# How the data is read and scored: eval.py also uses the training run's values unless given.
DATA_ARGS = ('data_type', 'val_list', 'ignore_index')
log = logging.getLogger('torchbase')


def parse_common_args(parser):
    group = parser.add_argument_group('model and data')
    group.add_argument('--model_type', default='base', choices=list(type2model), help='see model/model_entry.py')
    group.add_argument('--data_type', default='list', choices=list(type2data), help='see data/data_entry.py')
    group.add_argument('--num_classes', type=int, default=len(CLASS_NAMES), help='outputs of the model')
    group.add_argument('--class_names', nargs='+', default=list(CLASS_NAMES),
                       help='one name per class, used for the per-class metrics')
    group.add_argument('--ignore_index', type=int, default=255, help='label value that no loss or metric counts')
    group.add_argument('--val_list', default=os.path.join(DEMO_DIR, 'val.txt'),
                       help='the validation list in training, the list to evaluate in eval.py')
    group = parser.add_argument_group('runs')
    group.add_argument('--save_prefix', default='exp',
                       help='a note on the experiment; names the run folder (train) or result folder (eval)')
    group.add_argument('--load_model_path', default='',
                       help='train: weights to start from. eval: the checkpoint; empty: best.pth of the newest run')
    group.add_argument('--load_not_strict', action='store_true',
                       help='load only the tensors whose names and shapes match (utils/torch_utils.load_match_dict)')
    group.add_argument('--checkpoints_dir', default='checkpoints', help='where run folders are made')
    group.add_argument('--seed', type=int, default=0, help='seeds python, numpy, torch and the data order')
    group.add_argument('--check_data', action='store_true',
                       help='read every sample of the lists before starting, and report all bad ones at once')
    group = parser.add_argument_group('hardware')
    group.add_argument('--gpus', nargs='+', type=int,
                       help='GPU ids; several: DataParallel over them. Not given: one GPU if there is one, else CPU')
    group.add_argument('--num_workers', type=int, default=0,
                       help='data loading processes; 0 loads in the main one, which measured fastest for the demo '
                            'on 2 cores. Raise it with more cores or images that are slow to decode')
    group.add_argument('--dist_timeout', type=int, default=600,
                       help='under torchrun: seconds a process waits for the others before it fails')
    group.add_argument('--deterministic', action='store_true',
                       help='deterministic algorithms only (slower on GPU); an op without one is logged, not fatal')
    return parser


def parse_train_args(parser):
    parser = parse_common_args(parser)
    group = parser.add_argument_group('training')
    group.add_argument('--train_list', default=os.path.join(DEMO_DIR, 'train.txt'),
                       help='list file of `image_path label_path` lines')
    group.add_argument('--epochs', type=int, default=10, help='passes over --train_list')
    group.add_argument('--batch_size', type=int, default=8, help='samples per training step')
    group.add_argument('--lr', type=float, default=3e-3, help='learning rate')
    group.add_argument('--momentum', type=float, default=0.9, help="Adam's beta1 (the momentum of the gradient)")
    group.add_argument('--beta', type=float, default=0.999, help="Adam's beta2 (the momentum of its square)")
    group.add_argument('--weight_decay', type=float, default=0.0, help='L2 penalty added by Adam')
    group.add_argument('--loss', default='ce', choices=list(type2loss), help='see loss.py')
    group.add_argument('--monitor', default='val/mIoU', help='the validation value that decides best.pth')
    group.add_argument('--monitor_mode', default='max', choices=['max', 'min'], help='max for scores, min for errors')
    group.add_argument('--save_freq', type=int, default=1, help='write epoch_<N>.pth every this many epochs')
    group.add_argument('--keep_last', type=int, default=0,
                       help='keep only the newest N epoch_<N>.pth (0: all); best.pth and last.pth are always kept')
    group.add_argument('--sync_bn', action='store_true',
                       help='under torchrun on GPUs: BatchNorm statistics over the batches of all processes')
    group.add_argument('--resume', default='',
                       help='a run folder: continue it from its last.pth with its own flags (see utils/resume.py)')
    group.add_argument('--print_freq', type=int, default=10, help='refresh the shown loss every this many steps')
    group.add_argument('--model_dir', default='', help='leave empty: prepare_train_args fills it in')
    return parser


def parse_test_args(parser):
    parser = parse_common_args(parser)
    # Not given on the command line (None), these come from the checkpoint: see prepare_test_args.
    parser.set_defaults(**dict.fromkeys(MODEL_ARGS + DATA_ARGS))
    group = parser.add_argument_group('evaluation')
    group.add_argument('--batch_size', type=int, default=1, help='1 as in the article; any size gives the same results')
    group.add_argument('--save_viz', action='store_true', help='save input | prediction | truth pictures')
    group.add_argument('--viz_freq', type=int, default=20, help='with --save_viz: one picture every this many samples')
    group.add_argument('--result_dir', default='', help='leave empty: prepare_test_args fills it in')
    return parser


def check_args(args):
    """Raises one ConfigError listing every problem found, so they can all be fixed at once."""
    problems = []
    if len(args.class_names) != args.num_classes:
        problems.append(f'--class_names has {len(args.class_names)} names for --num_classes {args.num_classes}')
    for name in ('batch_size', 'epochs', 'lr', 'save_freq', 'print_freq', 'viz_freq', 'dist_timeout'):
        if getattr(args, name, 1) <= 0:
            problems.append(f'--{name} must be positive, got {getattr(args, name)}')
    for name in ('num_workers', 'seed', 'keep_last'):
        if getattr(args, name, 0) < 0:
            problems.append(f'--{name} must be 0 or more, got {getattr(args, name)}')
    if not args.save_prefix or os.sep in args.save_prefix or '/' in args.save_prefix or args.save_prefix == '..':
        problems.append(f'--save_prefix {args.save_prefix!r} names a folder: use a plain name, no "/" or ".."')
    if getattr(args, 'sync_bn', False) and not torch.cuda.is_available():
        problems.append('--sync_bn needs CUDA GPUs (SyncBatchNorm does not run on the CPU): leave it out')
    if getattr(args, 'monitor_mode', None) == 'max' and args.monitor.endswith('loss'):
        problems.append(f'--monitor {args.monitor} is an error measure: add --monitor_mode min')
    if problems:
        raise ConfigError('\n  '.join(['invalid arguments:'] + problems))
    if args.gpus:
        check_gpus(args.gpus)


def start_folder(args, folder, script, argv):
    """Saves args.json, command.txt and run_info.json (commit, environment, source hashes) into a new run or
    result folder and starts its log (train.log, eval.log)."""
    save_args(args, folder)
    save_command(folder, script, argv)
    write_run_info(args, folder)
    setup_logging(os.path.join(folder, script.replace('.py', '.log')))


def check_samples(dataset):
    """--check_data: reads every sample and reports all that cannot be used, not only the first."""
    bad = []
    for i in tqdm(range(len(dataset)), desc='--check_data', leave=False, dynamic_ncols=True):
        try:
            dataset[i]
        except ConfigError as e:
            bad.append(str(e))
    if bad:
        more = f'\n  ... and {len(bad) - 20} more' if len(bad) > 20 else ''
        raise ConfigError(f'--check_data: {len(bad)} of {len(dataset)} samples cannot be used:\n  '
                          + '\n  '.join(bad[:20]) + more)


def check_inputs(args, is_train):
    """Checks what can be checked before a folder is made, so that a mistake there leaves nothing behind: the
    list files and their lines, the checkpoint to load (readable, plain values only, fits the model), and with
    --check_data every sample. EDIT ME: check here the inputs of a dataset that reads no list file."""
    for list_path in ([args.train_list] if is_train else []) + [args.val_list]:
        ensure_demo_data(list_path)
        if issubclass(type2data[args.data_type], ListDataset):
            read_list(list_path)
    if args.load_model_path and not getattr(args, 'resume', ''):
        state = get_state_dict(args.load_model_path, mmap=True)  # mmap: no copy of the weights in memory
        if not args.load_not_strict:
            with torch.device('meta'):  # a model without memory or computation: only names and shapes count
                check_fit(select_model(args), state, args.load_model_path)
    if args.check_data:
        for train_set in ([True] if is_train else []) + [False]:
            check_samples(get_dataset_by_type(args, train_set))


def get_train_model_dir(args):
    """Creates the run folder <checkpoints_dir>/<model_type>_<save_prefix> (numbered if taken) and returns it."""
    return make_run_dir(args.model_dir or os.path.join(args.checkpoints_dir, f'{args.model_type}_{args.save_prefix}'))


def get_test_result_dir(args):
    """Creates <checkpoint path without extension>/<list folder>_<list name>_<save_prefix> (numbered if taken:
    an evaluation never mixes its files with an earlier one's) and returns it."""
    if args.result_dir:
        return make_run_dir(args.result_dir)
    list_folder = os.path.basename(os.path.dirname(os.path.abspath(args.val_list)))
    list_name = os.path.splitext(os.path.basename(args.val_list))[0]
    return make_run_dir(os.path.join(os.path.splitext(args.load_model_path)[0],
                                     f'{list_folder}_{list_name}_{args.save_prefix}'))


def make_parser(description):
    # allow_abbrev=False: `--lr` must not silently match another flag that starts the same way.
    return argparse.ArgumentParser(description=description, allow_abbrev=False,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def prepare_train_args(argv=None):
    """Parses and checks the flags, makes the run folder (or reopens the one --resume names) and starts its log.
    Under torchrun every process joins the group, rank 0 alone checks and writes, and all get its args."""
    close_logging()  # until this run's folder exists, errors go to the console only, not to an earlier run's log
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parse_train_args(make_parser('Train a model.'))
    args = parser.parse_args(argv)
    init_distributed(args)
    args = argparse.Namespace(**on_main(lambda: vars(make_train_folder(parser, argv, args))))
    if not is_main():
        setup_logging(None)
    return args


def make_train_folder(parser, argv, args):
    if args.resume:  # the run's own args, with the flags that may change applied
        args = resume_args(parser, argv, args.resume)
    check_args(args)
    check_inputs(args, is_train=True)
    if args.resume:
        save_args(args, args.model_dir)  # --epochs may have grown
        save_command(args.model_dir, 'train.py', argv, append=True)
        setup_logging(os.path.join(args.model_dir, 'train.log'))
        log.info(f'Resuming {args.model_dir}')
    else:
        args.model_dir = get_train_model_dir(args)
        start_folder(args, args.model_dir, 'train.py', argv)
        log.info(f'Run folder: {args.model_dir}')
    return args


def prepare_test_args(argv=None):
    close_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parse_test_args(make_parser(f'Evaluate a checkpoint. The flags with default None here '
                                         f'({", ".join(MODEL_ARGS + DATA_ARGS)}) take the values the '
                                         'checkpoint was trained with.'))
    args = parser.parse_args(argv)
    init_distributed(args)
    args = argparse.Namespace(**on_main(lambda: vars(make_result_folder(argv, args))))
    if not is_main():
        setup_logging(None)
    return args


def make_result_folder(argv, args):
    if not args.load_model_path:
        args.load_model_path = os.path.join(read_latest(args.checkpoints_dir), 'best.pth')
        argv += ['--load_model_path', args.load_model_path]  # so that command.txt evaluates this one again
    ckpt = load_checkpoint(args.load_model_path, mmap=True)
    saved = ckpt.get('args', {}) if isinstance(ckpt, dict) else {}  # a bare state dict has no args
    defaults = parse_common_args(argparse.ArgumentParser())
    for name in MODEL_ARGS + DATA_ARGS:
        if getattr(args, name) is None:
            setattr(args, name, saved.get(name, defaults.get_default(name)))
    check_args(args)
    check_inputs(args, is_train=False)
    args.result_dir = get_test_result_dir(args)
    start_folder(args, args.result_dir, 'eval.py', argv)
    log.info(f'Result folder: {args.result_dir}')
    return args
