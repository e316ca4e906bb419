"""What TensorBoard shows about a run besides its curves: its flags and metrics in HPARAMS (one
row per run, so runs compare by flag in the browser), and args.json, the command and the commit
in TEXT. Logger calls it; nothing else needs to."""
import glob
import json
import os

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

# The HPARAMS table's metric columns. The same names for every task and --monitor (the `monitor`
# flag column says which value they are), so that runs of any task share one table. A column
# shows the last value of the scalar of its name in the run: save_run_metrics writes them.
METRICS = ('hparams/best_monitor', 'hparams/best_epoch', 'hparams/last_monitor',
           'hparams/last_val_loss')


def has_events(folder):
    """Whether `folder` already holds a TensorBoard event file (a resumed run's)."""
    return bool(glob.glob(os.path.join(folder, 'events.out.tfevents.*')))


def flag_values(args):
    """The flags as values that the hparams table holds: bool, int, float or str; a list joined
    by spaces, None as 'none', anything else as its str()."""
    values = {}
    for name, value in sorted(vars(args).items()):
        if isinstance(value, (list, tuple)):
            value = ' '.join(map(str, value))
        elif value is None:
            value = 'none'
        elif not isinstance(value, (bool, int, float, str)):
            value = str(value)
        values[name] = value
    return values


def write_hparams(writer, args):
    """The run's row of HPARAMS: a session start holding the flags, written into the run's own
    event file (SummaryWriter.add_hparams would write it into a sub-folder, which TensorBoard
    lists as a second run). No experiment summary: without one, TensorBoard builds the table
    from every run's row and puts first the flags whose values differ between the runs (seen
    in headless Chromium: lr, scheduler, save_prefix before the ninety others); with one, it
    takes a single run's, sorted by name. The metric columns are then the runs' scalars, METRICS
    among them. No session end: a status written at the start would be a guess."""
    _, start, _ = hparams(flag_values(args), dict.fromkeys(METRICS, 0.0))
    writer.file_writer.add_summary(start)


def code_block(path, language):
    """The file at `path` as a markdown code block, or None when the folder has no such file
    (a Logger outside train.py)."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return f'```{language}\n{f.read().rstrip()}\n```'


def commit_text(folder):
    """run_info.json's commit and whether the code differed from it (the changes themselves are
    in uncommitted.patch beside it)."""
    path = os.path.join(folder, 'run_info.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        git = json.load(f).get('git', {})
    shown = {k: git[k] for k in ('commit', 'dirty', 'note') if k in git}
    return f'```json\n{json.dumps(shown, indent=2)}\n```'


def write_texts(writer, folder, step):
    """args.json, command.txt and the commit under TEXT at `step`: 0 when the run starts, the
    first epoch it trains when resumed (command.txt then holds both commands)."""
    texts = {'run/args.json': code_block(os.path.join(folder, 'args.json'), 'json'),
             'run/command': code_block(os.path.join(folder, 'command.txt'), 'bash'),
             'run/git': commit_text(folder)}
    for tag, text in texts.items():
        if text is not None:
            writer.add_text(tag, text, step)
    writer.flush()


def open_writer(args, purge_step):
    """The run's SummaryWriter, with the HPARAMS row written once per run folder (a resumed run
    finds its event files there and keeps its one row) and TEXT at purge_step (or 0)."""
    fresh = not has_events(args.model_dir)
    writer = SummaryWriter(args.model_dir, purge_step=purge_step)
    if fresh:
        write_hparams(writer, args)
    write_texts(writer, args.model_dir, purge_step or 0)
    return writer


def write_run_metrics(writer, epoch, scalars, monitor, progress):
    """The METRICS after epoch `epoch`: the best --monitor so far and its epoch, and this epoch's
    --monitor and val/loss (the last epoch's, once the run ends)."""
    values = [progress.best_metric, progress.best_epoch, scalars.get(monitor),
              scalars.get('val/loss')]
    for name, value in zip(METRICS, values, strict=True):
        if value is not None:
            writer.add_scalar(name, value, epoch)
