"""Run folders: each run gets a folder of its own (`name`, then `name_2`, `name_3`, ...), and
`<checkpoints_dir>/latest` names the newest. A plain text file, not a symlink: TensorBoard would list the
run twice."""
import os

from utils.checkpoint import write_text
from utils.errors import ConfigError


def make_run_dir(base):
    """Creates and returns `base`, or `base_2`, `base_3`, ... for the first name not taken. os.mkdir fails
    when the folder exists, so two runs started at the same moment can never share a folder."""
    os.makedirs(os.path.dirname(base) or '.', exist_ok=True)
    n = 1
    while True:
        path = base if n == 1 else f'{base}_{n}'
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1


def write_latest(checkpoints_dir, run_dir):
    write_text(os.path.join(checkpoints_dir, 'latest'), os.path.basename(run_dir) + '\n')


def read_latest(checkpoints_dir):
    """The newest run folder, as named by `<checkpoints_dir>/latest`."""
    latest = os.path.join(checkpoints_dir, 'latest')
    if not os.path.isfile(latest):
        raise ConfigError(f'no run found: {latest} does not exist; train first (python train.py) or pass '
                          'the checkpoint to evaluate with --load_model_path')
    with open(latest) as f:
        return os.path.join(checkpoints_dir, f.read().strip())
