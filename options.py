"""Every flag of train.py and eval.py (every args.X used anywhere is declared here). parse_common_args declares
those both need, so none is given at training time and forgotten at test time. prepare_train_args /
prepare_test_args parse and check the flags, create the run or result folder, save the args and start its log."""
import argparse
import logging
import os
import sys
import tempfile

from data.data_entry import type2data
from data.make_shapes import CLASS_NAMES, DEMO_DIR
from loss import type2loss
from model.model_entry import type2model
from utils.checkpoint import read_checkpoint
from utils.checks import check_args, check_inputs
from utils.dist import init_distributed, is_main, on_main
from utils.errors import ConfigError
from utils.folder_lock import remove_temporary_files
from utils.provenance import write_run_info
from utils.resume import resume_args
from utils.run_dir import (
    close_logging,
    make_run_dir,
    read_latest,
    remove_run_dir,
    save_args,
    save_command,
    setup_logging,
)
from utils.run_status import RunStatus

# The flags that define the model. eval.py takes them from the checkpoint unless its command line gives them.
# EDIT ME: add every flag your model's __init__ reads.
MODEL_ARGS = ('model_type', 'num_classes', 'class_names')
# How the data is read and scored: eval.py also uses the training run's values unless given.
DATA_ARGS = ('data_type', 'val_list', 'ignore_index')
TEMPORARY = 'torchbase_fast_dev_run_'  # the name of --fast_dev_run's temporary folder begins so
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
    group.add_argument('--print_freq', type=int, default=10,
                       help='show the loss (and check that it is finite) every this many steps')
    group.add_argument('--early_stop', type=int, default=0,
                       help='stop when --monitor has not improved for this many epochs (0: never)')
    group.add_argument('--model_dir', default='', help='leave empty: prepare_train_args fills it in')
    parse_optim_args(parser.add_argument_group('optimization (utils/optim.py)'))
    group = parser.add_argument_group('debugging')
    group.add_argument('--fast_dev_run', action='store_true',
                       help='one training and one validation batch, in a temporary run folder removed at the end')
    group.add_argument('--overfit_batches', type=int, default=0,
                       help='train on the first N batches only, and validate on them: a model that cannot fit them '
                            'has a bug')
    group.add_argument('--limit_train_batches', type=int, default=0, help='train on N batches per epoch (0: all)')
    group.add_argument('--limit_val_batches', type=int, default=0, help='validate on the first N batches (0: all)')
    group.add_argument('--detect_anomaly', action='store_true',
                       help='a NaN or inf in the backward pass raises an error naming the forward op; slow')
    group.add_argument('--profile', action='store_true',
                       help='save a torch.profiler trace of training steps 3-5 as trace.json in the run folder')
    return parser


def parse_optim_args(group):
    group.add_argument('--optimizer', default='adam', choices=['adam', 'adamw', 'sgd'], help='see build_optimizer')
    group.add_argument('--lr', type=float, default=3e-3, help='learning rate (the peak one with a schedule)')
    group.add_argument('--momentum', type=float, default=0.9,
                       help="the momentum of the gradient: SGD's momentum, Adam's and AdamW's beta1")
    group.add_argument('--beta', type=float, default=0.999, help="Adam's and AdamW's beta2 (SGD has none)")
    group.add_argument('--weight_decay', type=float, default=0.0,
                       help='an L2 penalty with adam and sgd; the decoupled decay of adamw (try 0.01 to 0.05)')
    group.add_argument('--scheduler', default='none', choices=['none', 'step', 'cosine', 'plateau'],
                       help='how the learning rate changes (formulas: utils/optim.LRSchedule)')
    group.add_argument('--warmup_epochs', type=float, default=0, help='raise the lr linearly over these epochs')
    group.add_argument('--lr_step_size', type=int, default=30, help='step: the lr times --lr_gamma every N epochs')
    group.add_argument('--lr_gamma', type=float, default=0.1, help='step and plateau: the factor that lowers the lr')
    group.add_argument('--lr_patience', type=int, default=2,
                       help='plateau: lower the lr after --monitor has not improved for more than N epochs')
    group.add_argument('--min_lr', type=float, default=0.0, help='cosine and plateau: the lowest lr')
    group.add_argument('--accum_steps', type=int, default=1,
                       help='update the weights every N steps with their mean gradient: a batch N times larger')
    group.add_argument('--clip_grad', type=float, default=0.0, help='clip the gradient norm to this (0: no clipping)')
    group.add_argument('--ema', type=float, default=0.0,
                       help='keep an exponential moving average of the weights with this decay (e.g. 0.999) and '
                            'validate, save as best and evaluate it (0: off)')
    group.add_argument('--amp', action='store_true', help='mixed precision: autocast and, with float16, a GradScaler')
    group.add_argument('--amp_dtype', default='auto', choices=['auto', 'bfloat16', 'float16'],
                       help='--amp type; auto: bfloat16 on the CPU, float16 on a GPU')
    group.add_argument('--channels_last', action='store_true',
                       help='NHWC memory layout: faster convolutions with --amp on recent GPUs')
    group.add_argument('--compile', action='store_true',
                       help='torch.compile the model: faster steps after a first one that compiles (minutes)')


def parse_test_args(parser):
    parser = parse_common_args(parser)
    # Not given on the command line (None), these come from the checkpoint: see prepare_test_args.
    parser.set_defaults(**dict.fromkeys(MODEL_ARGS + DATA_ARGS))
    group = parser.add_argument_group('evaluation')
    group.add_argument('--batch_size', type=int, default=1, help='1 as in the article; any size gives the same results')
    group.add_argument('--save_viz', action='store_true', help='save input | prediction | truth pictures')
    group.add_argument('--viz_freq', type=int, default=20, help='with --save_viz: one picture every this many samples')
    group.add_argument('--result_dir', default='', help='leave empty: prepare_test_args fills it in')
    group.add_argument('--checkpoint_sha256', default='',
                       help='the sha256 the checkpoint must have (another file is refused); empty: filled in')
    return parser


def start_folder(args, folder, script, argv):
    """Saves args.json, command.txt and run_info.json (commit, environment, source hashes) into a new run or
    result folder, and status.json into a run folder, and starts its log (train.log, eval.log). Interrupted or
    failed, it removes the folder: a folder is complete or absent."""
    try:
        save_args(args, folder)
        save_command(folder, script, argv)
        write_run_info(args, folder)
        if script == 'train.py':
            RunStatus(args).update()  # `running`: from here on, `python -m utils.runs` can tell it was killed
        setup_logging(os.path.join(folder, script.replace('.py', '.log')))
    except BaseException:
        remove_run_dir(folder)
        raise


def absolute_lists(args, names):
    """The list files as absolute paths, so that args.json and checkpoints name the files that were read, and
    eval.py or --resume from another working folder read the same ones."""
    for name in names:
        setattr(args, name, os.path.abspath(getattr(args, name)))


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
    check_args(args)  # the flags of the real run, before the debugging modes change some
    apply_debug_flags(args)
    check_inputs(args, is_train=True)
    if args.resume:
        save_args(args, args.model_dir)  # --epochs may have grown
        save_command(args.model_dir, 'train.py', argv, append=True)
        if not os.path.isfile(os.path.join(args.model_dir, 'run_info.json')):  # killed as it started
            write_run_info(args, args.model_dir)
        setup_logging(os.path.join(args.model_dir, 'train.log'))
        log.info(f'Resuming {args.model_dir}')
        remove_temporary_files(args.model_dir)  # safe: this process holds the folder's lock
    else:
        absolute_lists(args, ('train_list', 'val_list'))
        if args.fast_dev_run:  # train.main removes it at the end
            args.checkpoints_dir = tempfile.mkdtemp(prefix=TEMPORARY)
        args.model_dir = get_train_model_dir(args)
        start_folder(args, args.model_dir, 'train.py', argv)
        log.info(f'Run folder: {args.model_dir}')
    # older than a minute: not a `latest` that another run is writing now
    remove_temporary_files(args.checkpoints_dir, older_than=60)
    return args


def apply_debug_flags(args):
    """--overfit_batches and --fast_dev_run set other flags; --overfit_batches's are saved in args.json."""
    if args.overfit_batches and args.val_list != args.train_list:  # validate on the samples it overfits
        log.info(f'--overfit_batches: validating on --train_list {args.train_list}, not {args.val_list}')
        args.val_list = args.train_list
    if args.fast_dev_run and not args.resume:  # a temporary run folder, made once the checks pass
        args.epochs = args.limit_train_batches = args.limit_val_batches = 1
        args.model_dir = ''


def prepare_test_args(argv=None):
    """Parses and checks the flags, reads the checkpoint and makes the result folder beside it; returns the args
    and the checkpoint. The checkpoint is read once: the weights scored, the args they are rebuilt with and the
    sha256 in result.txt all come from the same bytes, even if training replaces the file meanwhile."""
    close_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parse_test_args(make_parser(f'Evaluate a checkpoint. The flags with default None here '
                                         f'({", ".join(MODEL_ARGS + DATA_ARGS)}) take the values the '
                                         'checkpoint was trained with.'))
    args = parser.parse_args(argv)
    init_distributed(args)
    read = {}  # rank 0's checkpoint
    args = argparse.Namespace(**on_main(lambda: vars(make_result_folder(argv, args, read))))
    if not is_main():
        setup_logging(None)
    return args, on_main(lambda: read['ckpt'])  # sent to the other processes: they score the same bytes


def make_result_folder(argv, args, read):
    """Reads the checkpoint into read['ckpt'] and the args it was trained with, then checks and makes the folder."""
    if not args.load_model_path:
        args.load_model_path = os.path.join(read_latest(args.checkpoints_dir), 'best.pth')
        argv += ['--load_model_path', args.load_model_path]  # so that command.txt evaluates this one again
    ckpt, sha256 = read_checkpoint(args.load_model_path)
    if args.checkpoint_sha256 and args.checkpoint_sha256 != sha256:
        raise ConfigError(f'--checkpoint_sha256 {args.checkpoint_sha256}: {args.load_model_path} has sha256 '
                          f'{sha256}, another file; pass the checkpoint with that hash, or leave the flag out')
    args.checkpoint_sha256, read['ckpt'] = sha256, ckpt
    saved = ckpt.get('args') if isinstance(ckpt, dict) else None
    saved = saved if isinstance(saved, dict) else {}  # a bare state dict has no args
    defaults = parse_common_args(argparse.ArgumentParser())
    for name in MODEL_ARGS + DATA_ARGS:
        if getattr(args, name) is None:
            setattr(args, name, saved.get(name, defaults.get_default(name)))
    check_args(args)
    check_inputs(args, is_train=False, ckpt=ckpt)
    absolute_lists(args, ('val_list',))
    args.result_dir = get_test_result_dir(args)
    start_folder(args, args.result_dir, 'eval.py', argv)
    log.info(f'Result folder: {args.result_dir}')
    return args
