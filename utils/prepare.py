"""The run-folder half of options.prepare_train_args / prepare_test_args: join the process group
under torchrun, then, on rank 0 alone, make (or reopen) the run or result folder and save in it
the args, the command, run_info.json (commit, patch, environment) and status.json."""
import argparse
import logging
import os
import tempfile

from utils.checkpoint import read_checkpoint
from utils.dist import init_distributed, is_main, on_main
from utils.errors import ConfigError
from utils.folder_lock import remove_temporary_files
from utils.provenance import write_run_info
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

log = logging.getLogger('torchbase')


def in_process_group(args, make_folder):
    """Joins the process group that torchrun describes (if any); rank 0 runs make_folder(),
    which returns the args it saved, and every process gets them."""
    close_logging()  # until the folder exists, errors go to the console, not an old run's log
    init_distributed(args)
    args = argparse.Namespace(**on_main(lambda: vars(make_folder())))
    if not is_main():
        setup_logging(None)
    return args


def start_folder(args, folder, script, argv, classes):
    """Saves args.json, command.txt and run_info.json (source hashes of `classes`) into a new
    folder, and status.json into a run folder, then starts its log (train.log, eval.log).
    Interrupted or failed, it removes the folder: a folder is complete or absent."""
    try:
        save_args(args, folder)
        save_command(folder, script, argv)
        start = ({'--load_model_path': args.load_model_path,
                  '--weights_backbone': args.weights_backbone} if script == 'train.py' else None)
        write_run_info(folder, args.seed, classes, start)
        if script == 'train.py':
            RunStatus(args).update()  # `running`: from here on, a kill shows as `killed`
        setup_logging(os.path.join(folder, script.replace('.py', '.log')))
    except BaseException:
        remove_run_dir(folder)
        raise


def absolute_lists(args, names):
    """The list files as absolute paths, so that args.json and checkpoints name the files that
    were read, and eval.py or --resume from another working folder read the same ones."""
    for name in names:
        setattr(args, name, os.path.abspath(getattr(args, name)))


def open_run_folder(args, argv, classes, temporary_prefix):
    """Makes the run folder <checkpoints_dir>/<model_type>_<save_prefix> (numbered if taken), or
    reopens the one --resume names, and returns the args saved there."""
    if args.resume:
        save_args(args, args.model_dir)  # --epochs may have grown
        save_command(args.model_dir, 'train.py', argv, append=True)
        if not os.path.isfile(os.path.join(args.model_dir, 'run_info.json')):  # killed at start
            write_run_info(args.model_dir, args.seed, classes)
        setup_logging(os.path.join(args.model_dir, 'train.log'))
        log.info(f'Resuming {args.model_dir}')
        remove_temporary_files(args.model_dir)  # safe: this process holds the folder's lock
    else:
        absolute_lists(args, ('train_list', 'val_list'))
        if args.fast_dev_run:  # train.main removes it at the end
            args.checkpoints_dir = tempfile.mkdtemp(prefix=temporary_prefix)
        name = f'{args.model_type}_{args.save_prefix}'
        args.model_dir = make_run_dir(args.model_dir or os.path.join(args.checkpoints_dir, name))
        start_folder(args, args.model_dir, 'train.py', argv, classes)
        log.info(f'Run folder: {args.model_dir}')
    # older than a minute: not a `latest` that another run is writing now
    remove_temporary_files(args.checkpoints_dir, older_than=60)
    return args


def read_evaluated(args, argv):
    """(checkpoint, the args it was trained with) of the checkpoint to evaluate: --load_model_path,
    or best.pth of the newest run (then added to argv, so command.txt evaluates it again). Fills
    in args.checkpoint_sha256, or refuses a file with another one."""
    if not args.load_model_path:
        args.load_model_path = os.path.join(read_latest(args.checkpoints_dir), 'best.pth')
        argv += ['--load_model_path', args.load_model_path]
    ckpt, sha256 = read_checkpoint(args.load_model_path)
    if args.checkpoint_sha256 and args.checkpoint_sha256 != sha256:
        raise ConfigError(f'--checkpoint_sha256 {args.checkpoint_sha256}: {args.load_model_path} '
                          f'has sha256 {sha256}, another file; pass the checkpoint with that '
                          'hash, or leave the flag out')
    args.checkpoint_sha256 = sha256
    saved = ckpt.get('args') if isinstance(ckpt, dict) else None
    return ckpt, saved if isinstance(saved, dict) else {}  # a bare state dict has no args


def split_name(dataset_class, args):
    """The dataset's name of the split evaluated; --data_type for a dataset that gives none."""
    name = getattr(dataset_class, 'split_name', None)
    return name(args) if name else args.data_type


def open_result_folder(args, argv, classes):
    """Makes <checkpoint path without .pth>/<split name>_<save_prefix> (numbered if
    taken: an evaluation never mixes its files with an earlier one's), or --result_dir, and
    returns the args saved there."""
    absolute_lists(args, ('val_list',))
    if not args.result_dir:  # the dataset names its split, e.g. shapes_val or voc_val
        split = split_name(classes[1], args)
        args.result_dir = os.path.join(os.path.splitext(args.load_model_path)[0],
                                       f'{split}_{args.save_prefix}')
    args.result_dir = make_run_dir(args.result_dir)
    start_folder(args, args.result_dir, 'eval.py', argv, classes)
    log.info(f'Result folder: {args.result_dir}')
    return args
