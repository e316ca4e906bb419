"""Run and result folders: each gets a folder of its own (`name`, then `name_2`, `name_3`, ...)
with its args, command and log file, and `<checkpoints_dir>/latest` names the newest run that
has finished an epoch. A plain text file, not a symlink: TensorBoard would list the run twice.
The process that makes a folder holds its lock (utils/folder_lock.py)."""
import json
import logging
import os
import shlex
import shutil
import sys

from tqdm import tqdm

from utils.checkpoint import write_text
from utils.errors import ConfigError
from utils.folder_lock import lock_folder, unlock_folder

log = logging.getLogger('torchbase')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project: train.py's folder


class TqdmHandler(logging.Handler):
    """Prints log lines above the progress bars instead of through them; errors to stderr."""

    def emit(self, record):
        stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
        tqdm.write(self.format(record), file=stream)


WARNINGS = logging.getLogger('py.warnings')  # where logging.captureWarnings sends Python warnings


def close_logging():
    for logger in (log, WARNINGS):
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()


def setup_logging(log_file):
    """Sends the 'torchbase' log, and Python warnings (e.g. an op without a deterministic version
    under --deterministic), to the console and to `log_file` (appended to; replacing earlier
    handlers). Without a log_file (the processes other than rank 0 under torchrun), only warnings
    and errors, to the console."""
    close_logging()
    handlers = [TqdmHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
        handlers[-1].setFormatter(logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    for logger in (log, WARNINGS):
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO if log_file else logging.WARNING)
        logger.propagate = False
    logging.captureWarnings(True)
    # a log file on a full disk must not print a traceback at every line
    logging.raiseExceptions = False


def make_run_dir(base):
    """Creates and returns `base`, or `base_2`, `base_3`, ... for the first name not taken, locked
    by this process. os.mkdir fails when the folder exists, so two runs started at the same
    moment can never share a folder."""
    os.makedirs(os.path.dirname(base) or '.', exist_ok=True)
    n = 1
    while True:
        path = base if n == 1 else f'{base}_{n}'
        try:
            os.mkdir(path)
        except FileExistsError:
            n += 1
            continue
        try:
            lock_folder(path)  # a new folder: no one else can hold it yet
        except ConfigError:  # e.g. a full disk: leave no folder that holds only a lock file
            remove_run_dir(path)
            raise
        return path


def remove_run_dir(path):
    """Removes a folder that make_run_dir just made for a run that could not start (only its
    args, command and log are in it), and its parent if that is left empty, so a mistake in the
    flags leaves nothing behind."""
    close_logging()  # the log file is in the folder
    unlock_folder(path)
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(os.path.abspath(path)))  # fails, as it should, unless empty
    except OSError:
        pass


def write_latest(checkpoints_dir, run_dir):
    """Names `run_dir` in `<checkpoints_dir>/latest`: relative to checkpoints_dir when inside it,
    else absolute."""
    rel = os.path.relpath(run_dir, checkpoints_dir)
    name = os.path.abspath(run_dir) if rel.startswith('..') else rel
    write_text(os.path.join(checkpoints_dir, 'latest'), name + '\n')


def read_latest(checkpoints_dir):
    """The newest run folder with a checkpoint, as named by `<checkpoints_dir>/latest`."""
    latest = os.path.join(checkpoints_dir, 'latest')
    if not os.path.isfile(latest):
        raise ConfigError(f'no run found: {latest} does not exist; train first (python train.py) '
                          'or pass the checkpoint to evaluate with --load_model_path')
    with open(latest) as f:
        return os.path.join(checkpoints_dir, f.read().strip())  # an absolute path stays absolute


def save_args(args, save_dir):
    """Writes args.json; argparse.Namespace(**json.load(f)) gives the same args back."""
    text = json.dumps(vars(args), indent=2, sort_keys=True) + '\n'
    write_text(os.path.join(save_dir, 'args.json'), text)


def command_line(script, argv):
    """The command line, with the folder and interpreter it runs in: pasted into a shell, it runs
    again. Under torchrun, with its process counts (on several machines, add the rendezvous flags
    it was given)."""
    launch = [sys.executable]
    # scripts/torchrun.py: torchrun without its traceback at a stop
    if int(os.environ.get('WORLD_SIZE', 1)) > 1:
        launch += [project_file('scripts/torchrun.py'),
                   '--nnodes', os.environ.get('GROUP_WORLD_SIZE', '1'),
                   '--nproc_per_node', os.environ.get('LOCAL_WORLD_SIZE', '1')]
    command = shlex.join(launch + [project_file(script)] + list(argv))
    return f'cd {shlex.quote(os.getcwd())} && {command}'


def project_file(name):
    """A file of the project as seen from the working folder, which may be another
    (python ../torchbase/train.py)."""
    path = os.path.join(ROOT, name)
    return os.path.relpath(path) if not os.path.relpath(path).startswith('..') else path


def save_command(save_dir, script, argv, append=False):
    """Writes command.txt; a resumed run appends its command below the one that started it."""
    path = os.path.join(save_dir, 'command.txt')
    before = open(path).read() if append and os.path.isfile(path) else ''
    write_text(path, before + command_line(script, argv) + '\n')
