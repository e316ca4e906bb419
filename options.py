"""Every flag of train.py, eval.py and predict.py; every args.X used anywhere is declared here.
parse_common_args declares those both need, so none is given at training time and forgotten at
test time. prepare_train_args / prepare_test_args parse and check the flags, then make the run or
result folder and save the args there (utils/prepare.py)."""
import argparse
import logging
import os
import sys

from data.data_entry import type2data
from loss import type2loss
from model.model_entry import type2model
from task.task_entry import check_predicts, type2task
from utils.checks import check_args, check_inputs, check_writable, output_folders
from utils.dist import on_main
from utils.errors import ConfigError
from utils.prepare import (
    in_process_group,
    open_result_folder,
    open_run_folder,
    read_evaluated,
    start_folder,
)
from utils.resume import resume_args
from utils.run_dir import make_run_dir

# Flags that eval.py takes from the checkpoint unless its command line gives them: those that
# define the model, how the data is read and scored, and how the model runs.
# EDIT ME: add every flag your model's __init__ reads.
MODEL_ARGS = ('task', 'model_type', 'num_classes', 'class_names')
DATA_ARGS = ('data_type', 'data_root', 'val_list', 'val_split', 'ignore_index', 'loss')
RUN_ARGS = ('amp', 'amp_dtype', 'channels_last')
TEMPORARY = 'torchbase_fast_dev_run_'  # how --fast_dev_run's temporary folder's name begins
BY_TASK = 'default: by --task, see task/'
log = logging.getLogger('torchbase')


def parse_common_args(parser):
    group = parser.add_argument_group('task, model and data')
    group.add_argument('--task', default='seg', choices=list(type2task),
                       help='what kind of problem: see task/task_entry.py')
    group.add_argument('--model_type', choices=list(type2model),
                       help=f'see model/model_entry.py ({BY_TASK})')
    group.add_argument('--data_type', choices=list(type2data),
                       help=f'see data/data_entry.py ({BY_TASK})')
    group.add_argument('--num_classes', type=int,
                       help='outputs of the model (default: as many as --class_names)')
    group.add_argument('--class_names', nargs='+',
                       help=f'one name per class, for the per-class metrics ({BY_TASK})')
    group.add_argument('--ignore_index', type=int,
                       help=f'the label value that no loss or metric counts ({BY_TASK})')
    group.add_argument('--loss', choices=list(type2loss), help=f'see loss.py ({BY_TASK})')
    group.add_argument('--val_list',
                       help='the validation list in training, the list to evaluate in eval.py '
                            f'({BY_TASK})')
    group.add_argument('--data_root',
                       help='the folder of a dataset in its layout, for --data_type voc, '
                            'cityscapes, ade20k, folder')
    group.add_argument('--val_split',
                       help="with --data_root: the split validated and evaluated (default: the "
                            "dataset's, e.g. val)")
    group = parser.add_argument_group('runs')
    group.add_argument('--save_prefix', default='exp',
                       help='a note on the experiment; names the run folder (train) or the '
                            'result folder (eval)')
    group.add_argument('--load_model_path', default='',
                       help='train: weights to start from. eval: the checkpoint; empty: best.pth '
                            'of the newest run')
    group.add_argument('--load_not_strict', action='store_true',
                       help='load only the tensors whose names and shapes match '
                            '(utils/weights.load_match_dict)')
    group.add_argument('--checkpoints_dir', default='checkpoints', help='where runs are made')
    group.add_argument('--seed', type=int, default=0,
                       help='seeds python, numpy, torch and the data order')
    group.add_argument('--check_data', action='store_true',
                       help='read every sample before starting, and report all bad ones at once')
    parse_hardware_args(parser.add_argument_group('hardware'))
    return parser


def parse_hardware_args(group):
    group.add_argument('--gpus', nargs='+', type=int,
                       help='GPU ids; several: DataParallel over them. Not given: one GPU if '
                            'there is one, else the CPU')
    group.add_argument('--num_workers', type=int, default=0,
                       help='data loading processes; 0 loads in the main one, which measured '
                            'fastest for the demo on 2 cores. Raise it with more cores or '
                            'images that are slow to decode')
    group.add_argument('--amp', action=argparse.BooleanOptionalAction, default=False,
                       help='mixed precision: autocast and, with float16, a GradScaler')
    group.add_argument('--amp_dtype', default='auto', choices=['auto', 'bfloat16', 'float16'],
                       help='--amp type; auto: bfloat16 on the CPU, float16 on a GPU')
    group.add_argument('--channels_last', action=argparse.BooleanOptionalAction, default=False,
                       help='NHWC memory layout: faster convolutions with --amp on recent GPUs')
    group.add_argument('--dist_timeout', type=int, default=600,
                       help='under torchrun: seconds a process waits for the others, then fails')
    group.add_argument('--deterministic', action='store_true',
                       help='deterministic algorithms only (slower on GPU); an op without one '
                            'is logged, not fatal')


def parse_train_args(parser):
    parser = parse_common_args(parser)
    group = parser.add_argument_group('training')
    group.add_argument('--train_list', help=f'the training list ({BY_TASK})')
    group.add_argument('--train_split',
                       help="with --data_root: the split trained on (default: the dataset's, "
                            'e.g. train)')
    group.add_argument('--crop_size', type=int, nargs='+', metavar='H [W]',
                       help='train on random crops of this size (one value: a square), padded '
                            'where an image is smaller; needed when the images differ in size')
    group.add_argument('--scale_range', type=float, nargs=2, default=[1.0, 1.0],
                       metavar=('LO', 'HI'),
                       help='with --crop_size: rescale each training image by a random factor '
                            'in [LO, HI] first, e.g. 0.5 2.0')
    group.add_argument('--epochs', type=int, default=10, help='passes over --train_list')
    group.add_argument('--batch_size', type=int, default=8, help='samples per training step')
    group.add_argument('--monitor', help=f'the validation value that decides best.pth ({BY_TASK})')
    group.add_argument('--monitor_mode', choices=['max', 'min'],
                       help=f'max for scores, min for errors ({BY_TASK})')
    group.add_argument('--save_freq', type=int, default=1,
                       help='write epoch_<N>.pth every this many epochs')
    group.add_argument('--keep_last', type=int, default=5,
                       help='keep only the newest N epoch_<N>.pth (0: all); best.pth and '
                            'last.pth are always kept. 5: a 100-epoch run of a 40 M-parameter '
                            'model (deeplabv3_resnet50, 152 MiB a file) keeps 0.8 GiB of them, '
                            'not 15 GiB')
    group.add_argument('--sync_bn', action='store_true',
                       help='under torchrun on GPUs: BatchNorm statistics over all processes')
    group.add_argument('--resume', default='',
                       help='a run folder: continue it from its last.pth with its own flags '
                            '(see utils/resume.py)')
    group.add_argument('--print_freq', type=int, default=10,
                       help='show the loss (and check that it is finite) every N steps')
    group.add_argument('--early_stop', type=int, default=0,
                       help='stop when --monitor has not improved for N epochs (0: never)')
    group.add_argument('--model_dir', default='',
                       help='leave empty: prepare_train_args fills it in')
    parse_start_args(parser.add_argument_group('starting weights (utils/key_map.py)'))
    parse_optim_args(parser.add_argument_group('optimization (utils/optim.py)'))
    parse_debug_args(parser.add_argument_group('debugging'))
    return parser


def parse_start_args(group):
    group.add_argument('--load_into', default='', metavar='MODULE',
                       help='load --load_model_path into this sub-module of the model, e.g. '
                            'net.encoder for ImageNet weights of its backbone')
    group.add_argument('--load_prefix', action='append', default=[], metavar='OLD=NEW',
                       help="rename the file's keys that start with OLD, e.g. backbone.= drops "
                            "'backbone.'; repeatable")
    group.add_argument('--weights_backbone', default='', metavar='PATH',
                       help="a local file of the backbone's pretrained weights, for models "
                            'that declare their backbone (e.g. sota: torchvision '
                            'mobilenet_v3_large); never downloaded')


def parse_optim_args(group):
    group.add_argument('--optimizer', default='adam', choices=['adam', 'adamw', 'sgd'],
                       help='see build_optimizer')
    group.add_argument('--lr', type=float, default=3e-3,
                       help='learning rate (the peak one with a schedule)')
    group.add_argument('--momentum', type=float, default=0.9,
                       help="the momentum of the gradient: SGD's momentum, Adam's beta1")
    group.add_argument('--beta', type=float, default=0.999,
                       help="Adam's and AdamW's beta2 (SGD has none)")
    group.add_argument('--weight_decay', type=float, default=0.0,
                       help='an L2 penalty with adam and sgd; the decoupled decay of adamw '
                            '(try 0.01 to 0.05)')
    group.add_argument('--scheduler', default='none',
                       choices=['none', 'step', 'cosine', 'plateau'],
                       help='how the learning rate changes (utils/optim.LRSchedule)')
    group.add_argument('--warmup_epochs', type=float, default=0,
                       help='raise the lr linearly over these epochs')
    group.add_argument('--lr_step_size', type=int, default=30,
                       help='step: the lr times --lr_gamma every N epochs')
    group.add_argument('--lr_gamma', type=float, default=0.1,
                       help='step and plateau: the factor that lowers the lr')
    group.add_argument('--lr_patience', type=int, default=2,
                       help='plateau: lower the lr after --monitor has not improved for more '
                            'than N epochs')
    group.add_argument('--min_lr', type=float, default=0.0,
                       help='cosine and plateau: the lowest lr')
    group.add_argument('--accum_steps', type=int, default=1,
                       help='update the weights every N steps with their mean gradient: a '
                            'batch N times larger')
    group.add_argument('--clip_grad', type=float, default=0.0,
                       help='clip the gradient norm to this (0: no clipping)')
    group.add_argument('--ema', type=float, default=0.0,
                       help='keep an exponential moving average of the weights with this decay '
                            '(e.g. 0.999); validate, save as best and evaluate it (0: off)')
    group.add_argument('--compile', action='store_true',
                       help='torch.compile the model: faster steps after a first one that '
                            'compiles (minutes)')


def parse_debug_args(group):
    group.add_argument('--fast_dev_run', action='store_true',
                       help='one training and one validation batch, in a temporary run folder '
                            'removed at the end')
    group.add_argument('--overfit_batches', type=int, default=0,
                       help='train on the first N batches only, and validate on them: a model '
                            'that cannot fit them has a bug')
    group.add_argument('--limit_train_batches', type=int, default=0,
                       help='train on N batches per epoch (0: all)')
    group.add_argument('--limit_val_batches', type=int, default=0,
                       help='validate on the first N batches (0: all)')
    group.add_argument('--detect_anomaly', action='store_true',
                       help='a NaN or inf in the backward pass raises an error naming the '
                            'forward op; slow')
    group.add_argument('--profile', action='store_true',
                       help='save a torch.profiler trace of training steps 3-5 as trace.json')


def parse_test_args(parser):
    parser = parse_common_args(parser)
    # Not given on the command line (None), these come from the checkpoint: prepare_test_args.
    parser.set_defaults(**dict.fromkeys(MODEL_ARGS + DATA_ARGS + RUN_ARGS))
    # Training flags that the shared code reads, fixed for an evaluation.
    parser.set_defaults(sync_bn=False, overfit_batches=0, limit_train_batches=0)
    group = parser.add_argument_group('evaluation')
    group.add_argument('--batch_size', type=int, default=1,
                       help='1 as in the article; any size gives the same results')
    group.add_argument('--limit_val_batches', type=int, default=0,
                       help='evaluate the first N batches only (0: all)')
    group.add_argument('--save_viz', action='store_true', help="save the task's pictures")
    group.add_argument('--viz_freq', type=int, default=20,
                       help='with --save_viz: one picture every this many samples')
    group.add_argument('--result_dir', default='',
                       help='leave empty: prepare_test_args fills it in')
    group.add_argument('--checkpoint_sha256', default='',
                       help='the sha256 the checkpoint must have (another file is refused); '
                            'empty: filled in')
    return parser


def parse_predict_args(parser):
    parser = parse_common_args(parser)
    # Not given on the command line (None), these come from the checkpoint, as in eval.py.
    parser.set_defaults(**dict.fromkeys(MODEL_ARGS + DATA_ARGS + RUN_ARGS))
    # eval.py's flags that the shared checks read, fixed for a prediction.
    parser.set_defaults(sync_bn=False, viz_freq=1, limit_val_batches=0)
    group = parser.add_argument_group('prediction')
    group.add_argument('--input', required=True,
                       help='an image, a folder of images (searched recursively) or a list file '
                            'of image paths, one a line, relative to its folder')
    group.add_argument('--batch_size', type=int, default=1,
                       help='images a step (a batch holds images of one size); any size gives '
                            'the same predictions')
    group.add_argument('--slide_crop', type=int, nargs=2, metavar=('H', 'W'),
                       help='predict in windows of H x W that overlap by a third, averaging the '
                            'logits (per-pixel tasks): for images much larger than the training '
                            'crops')
    group.add_argument('--save_viz', action='store_true',
                       help="save the task's picture of each prediction into viz/")
    group.add_argument('--result_dir', default='',
                       help='leave empty: prepare_predict_args fills it in')
    group.add_argument('--checkpoint_sha256', default='',
                       help='the sha256 the checkpoint must have (another file is refused); '
                            'empty: filled in')
    return parser


def task_defaults(args, is_train):
    """Fills in the flags that --task and --data_type decide and the command line left out
    (None)."""
    if args.data_type is None:
        args.data_type = type2task[args.task].defaults['data_type']
    # the dataset's class names and ignore index come first, then the task's
    dataset = type2data.get(args.data_type)
    defaults = {**type2task[args.task].defaults, **getattr(dataset, 'defaults', {})}
    names = ('model_type', 'val_list', 'ignore_index', 'loss')
    names += ('train_list', 'monitor', 'monitor_mode') if is_train else ()
    for name in names:
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.class_names is None:  # the task's names, unless --num_classes says otherwise
        known = defaults['class_names'] or []  # None: the dataset has none (data/folder.py)
        if not known and args.num_classes is None:
            raise ConfigError(f'--data_type {args.data_type} has no class names of its own: pass '
                              '--class_names NAME ... (one per label value 0, 1, ...) or '
                              '--num_classes N')
        count = args.num_classes or len(known)
        same = count == len(known)
        args.class_names = known if same else [f'class_{i}' for i in range(count)]
    if args.num_classes is None:
        args.num_classes = len(args.class_names)
    serves = type2model[args.model_type].task if args.model_type in type2model else args.task
    if serves != args.task:
        raise ConfigError(f'--model_type {args.model_type} is a {serves} model, not one for '
                          f'--task {args.task}: pass --task {serves}, or a {args.task} model')
    return args


def chosen_classes(args):
    """The model, dataset and task classes that the flags choose (hashed by utils/provenance)."""
    return type2model[args.model_type], type2data[args.data_type], type2task[args.task]


def make_parser(description):
    # allow_abbrev=False: `--lr` must not silently match another flag that starts the same way.
    return argparse.ArgumentParser(description=description, allow_abbrev=False,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def prepare_train_args(argv=None):
    """Parses and checks the flags, makes the run folder (or reopens the one --resume names),
    saves the args there and starts its log. Under torchrun, rank 0 alone checks and writes."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parse_train_args(make_parser('Train a model.'))
    args = parser.parse_args(argv)
    return in_process_group(args, lambda: train_folder(parser, argv, args))


def train_folder(parser, argv, args):
    if args.resume:  # the run's own args, with the flags that may change applied
        args = resume_args(parser, argv, args.resume)
    task_defaults(args, is_train=True)
    check_args(args, is_train=True)  # the flags of the real run, before the debugging modes
    apply_debug_flags(args)
    check_inputs(args, True, chosen_classes(args))
    return open_run_folder(args, argv, chosen_classes(args), TEMPORARY)


def apply_debug_flags(args):
    """--overfit_batches and --fast_dev_run set other flags, saved in args.json."""
    if args.overfit_batches and args.val_list != args.train_list:
        log.info(f'--overfit_batches: validating on --train_list {args.train_list}, not '
                 f'{args.val_list}')
        args.val_list = args.train_list  # validate on the samples it overfits
    if args.fast_dev_run and not args.resume:  # a temporary run folder, made once checks pass
        args.epochs = args.limit_train_batches = args.limit_val_batches = 1
        args.warmup_epochs = 0  # within its one epoch (a cosine schedule needs one after it)
        args.model_dir = ''


def prepare_test_args(argv=None):
    """Parses and checks the flags, reads the checkpoint and makes the result folder beside it;
    returns the args and the checkpoint. It is read once: the weights scored, the args they are
    rebuilt with and the sha256 in result.txt come from the same bytes."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = ', '.join(MODEL_ARGS + DATA_ARGS + RUN_ARGS)
    parser = parse_test_args(make_parser(f'Evaluate a checkpoint. Flags not given of {names} '
                                         'take the values the checkpoint was trained with.'))
    args = parser.parse_args(argv)
    read = {}  # rank 0's checkpoint, sent to the others: they score the same bytes
    args = in_process_group(args, lambda: result_folder(argv, args, read))
    return args, on_main(lambda: read['ckpt'])


def result_folder(argv, args, read):
    checkpoint_args(argv, args, read)
    check_inputs(args, False, chosen_classes(args), ckpt=read['ckpt'])
    return open_result_folder(args, argv, chosen_classes(args))


def checkpoint_args(argv, args, read):
    """Reads the checkpoint into read['ckpt'], takes from it the flags of MODEL_ARGS, DATA_ARGS
    and RUN_ARGS that the command line did not give, and checks the flags."""
    ckpt, saved = read_evaluated(args, argv)
    read['ckpt'] = ckpt
    for name in MODEL_ARGS + DATA_ARGS + RUN_ARGS:
        if getattr(args, name) is None and name in saved:
            setattr(args, name, saved[name])
    common = parse_common_args(argparse.ArgumentParser())
    for name in ('task',) + RUN_ARGS:  # a bare state dict has no args: the defaults
        if getattr(args, name) is None:
            setattr(args, name, common.get_default(name))
    task_defaults(args, is_train=False)
    check_args(args, is_train=False)


def prepare_predict_args(argv=None):
    """Parses and checks the flags, reads the checkpoint as prepare_test_args does and makes the
    result folder <checkpoint path without .pth>/predict_<input name>_<save_prefix> (numbered if
    taken), or --result_dir; returns the args and the checkpoint."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = ', '.join(MODEL_ARGS + DATA_ARGS + RUN_ARGS)
    parser = parse_predict_args(make_parser(f'Predict with a checkpoint on images without labels. '
                                            f'Flags not given of {names} take the values the '
                                            'checkpoint was trained with.'))
    args = parser.parse_args(argv)
    read = {}
    args = in_process_group(args, lambda: predict_folder(argv, args, read))
    return args, read['ckpt']


def predict_folder(argv, args, read):
    if not os.path.exists(args.input):
        raise ConfigError(f'--input {args.input} does not exist: pass an image, a folder of '
                          'images or a list file of image paths')
    if args.slide_crop and min(args.slide_crop) <= 0:
        raise ConfigError(f'--slide_crop {args.slide_crop[0]} {args.slide_crop[1]}: give a window '
                          'H W above 0, e.g. the training --crop_size')
    checkpoint_args(argv, args, read)
    check_predicts(args.task)
    for flag, folder in output_folders(args, is_train=False):
        check_writable(folder, flag)
    args.input = os.path.abspath(args.input)
    if not args.result_dir:
        name = os.path.splitext(os.path.basename(args.input))[0]
        args.result_dir = os.path.join(os.path.splitext(args.load_model_path)[0],
                                       f'predict_{name}_{args.save_prefix}')
    args.result_dir = make_run_dir(args.result_dir)
    start_folder(args, args.result_dir, 'predict.py', argv, chosen_classes(args))
    log.info(f'Result folder: {args.result_dir}')
    return args


def parse_export_args(parser):
    """export.py's flags: those of the model and data, taken from the checkpoint unless given
    (export.prepare_export_args fills them in with checkpoint_args, as eval.py does)."""
    parser = parse_common_args(parser)
    parser.set_defaults(**dict.fromkeys(MODEL_ARGS + DATA_ARGS + RUN_ARGS))
    # eval.py's flags that the shared checks and the loader read, fixed for an export; an
    # empty result_dir: the file goes beside the checkpoint, which must be writable
    parser.set_defaults(viz_freq=1, limit_val_batches=0, overfit_batches=0, result_dir='')
    group = parser.add_argument_group('export')
    group.add_argument('--format', default='onnx', choices=['onnx', 'torchscript'],
                       help='onnx: run by ONNX Runtime and others; torchscript: by torch.jit.load')
    group.add_argument('--out', default='',
                       help='the file to write; empty: beside the checkpoint, <name>.onnx or '
                            '<name>.torchscript.pt')
    group.add_argument('--opset', type=int, default=18,
                       help="onnx: the ONNX opset; 18 is the one torch's ONNX functions are "
                            'written in')
    group.add_argument('--verify_batches', type=int, default=2,
                       help='compare the exported model with PyTorch on this many validation '
                            'batches')
    group.add_argument('--batch_size', type=int, default=2,
                       help='validation images a batch; the first batch is the example the '
                            'model is exported with')
    group.add_argument('--atol', type=float, default=1e-4,
                       help='the largest absolute difference allowed between the logits of '
                            'PyTorch and of the exported model')
    group.add_argument('--checkpoint_sha256', default='',
                       help='the sha256 the checkpoint must have (another file is refused); '
                            'empty: filled in')
    return parser
