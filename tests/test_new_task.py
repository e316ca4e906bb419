"""A new task touches only the article's places: proved by adding one. The project is copied,
a third task (reg: the mean brightness of an image) is added to the copy from the files in
tests/third_task/, and the copy trains, resumes after SIGTERM and evaluates it, with train.py,
eval.py, options.py and utils/ left as they were. Also: the metric contract of metrics.py."""
import argparse
import difflib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

from utils.checks import check_monitor
from utils.logger import Logger, metric_on
from utils.train_state import EpochSums

ROOT = Path(__file__).resolve().parent.parent
THIRD = ROOT / 'tests' / 'third_task'
SKIPPED = ('demo_data/', 'checkpoints/', '.venv/')  # data and runs, not source
# What a new task may add or edit, and what it must leave as it was.
NEW_FILES = {'data/brightness.py', 'model/reg_base/__init__.py',
             'model/reg_base/reg_base_model.py', 'task/reg.py'}
EDITED_FILES = {'data/data_entry.py', 'model/model_entry.py', 'task/task_entry.py', 'loss.py',
                'metrics.py'}
STEPS = 8  # Trainer.step calls per epoch: 24 training images in batches of 4, then 8 validation


def copy_project(dest):
    """Copies the project's source files (tracked, and untracked but not ignored: the working tree
    as it is) into `dest`; returns {relative path: bytes} of what was copied. Those bytes are what
    the copy is compared with at the end: the real files may be edited while the test runs."""
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                            cwd=ROOT, capture_output=True)
    if listed.returncode:
        pytest.skip('not a git checkout: the files to copy are those git lists')
    copied = {}
    for name in sorted(set(listed.stdout.decode().split('\0'))):
        path = ROOT / name
        if not name or name.startswith(SKIPPED) or not path.is_file():  # e.g. deleted, not staged
            continue
        copied[name] = path.read_bytes()
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(copied[name])
    return copied


def class_text(snippet):
    """The text of tests/third_task/`snippet` from its first class on: its imports are already
    in the file it goes into."""
    text = (THIRD / snippet).read_text()
    return text[text.index('\nclass ') + 1:]


def insert_before(path, anchor, text):
    """Inserts `text` before the first line of `path` that starts with `anchor`."""
    lines = path.read_text().splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.startswith(anchor)]
    assert found, f'{path}: no line starts with {anchor!r}'
    lines.insert(found[0], text)
    path.write_text(''.join(lines))


def register(path, registry, entry, import_line=None):
    """What the registries' comments ask of a new entry: one line at the end of the dict, and
    the import of its class."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f'{registry} = {{'))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith('}'))
    lines.insert(end, f'    {entry},\n')
    path.write_text(''.join(lines))
    if import_line:
        insert_before(path, 'from utils.', f'{import_line}\n')  # beside the other project imports


def add_third_task(project):
    """Adds the regression task to the copy `project`, in the five places a new task uses."""
    (project / 'model' / 'reg_base').mkdir()
    for source, target in [('brightness.py', 'data/brightness.py'),
                           ('reg_base/__init__.py', 'model/reg_base/__init__.py'),
                           ('reg_base/reg_base_model.py', 'model/reg_base/reg_base_model.py'),
                           ('reg.py', 'task/reg.py')]:
        (project / target).write_text((THIRD / source).read_text())
    register(project / 'data' / 'data_entry.py', 'type2data', "'brightness': BrightnessDataset",
             'from data.brightness import BrightnessDataset')
    register(project / 'model' / 'model_entry.py', 'type2model', "'reg_base': RegBaseModel",
             'from model.reg_base import RegBaseModel')
    register(project / 'task' / 'task_entry.py', 'type2task', "'reg': RegTask",
             'from task.reg import RegTask')
    insert_before(project / 'loss.py', 'type2loss = {', class_text('mse_loss.py') + '\n\n')
    register(project / 'loss.py', 'type2loss', "'mse': MSELoss")  # defined in loss.py
    with open(project / 'metrics.py', 'a') as f:
        f.write('\n\n' + class_text('mae_metric.py'))


def run(project, *argv, **popen):
    """A Python subprocess in the copy, which imports the copy's modules only."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.Popen([sys.executable, *argv], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(proc, returncode=0):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == returncode, err
    return out + err


def stop_at(project, tmp_path, pause_at, argv):
    """Training stopped by SIGTERM in its `pause_at`-th step (tests/paused_train.py pauses it
    there). Returns its output."""
    progress = tmp_path / 'progress'
    proc = run(project, '-m', 'tests.paused_train', str(progress), str(pause_at), *argv)
    deadline = time.time() + 120
    while not (progress.exists() and progress.read_text().endswith('paused')):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, 'the run never reached its pause'
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    return finish(proc, 128 + signal.SIGTERM)


def changed_files(project, copied):
    """(files of `project` that differ from `copied`, files that are new), run outputs aside."""
    now = {p.relative_to(project).as_posix(): p.read_bytes() for p in project.rglob('*')
           if p.is_file() and '__pycache__' not in p.parts}
    return ({name for name in copied if now[name] != copied[name]}, set(now) - set(copied))


def assert_same_run(run_dir, reference):
    """The resumed run ended as the straight one: the same weights, bit for bit, and the same
    values logged for the last epoch (the metric's sums of the stopped epoch were saved too)."""
    last, ref = (torch.load(r / 'last.pth', weights_only=True) for r in (run_dir, reference))
    assert last['epoch'] == ref['epoch'] == 2
    assert last['model'].keys() == ref['model'].keys()
    assert all(torch.equal(last['model'][k], ref['model'][k]) for k in ref['model'])
    assert last['metrics'] == ref['metrics']  # train/mae, val/mae, the losses, the lr
    assert {'train/mae', 'val/mae'} <= last['metrics'].keys()


def assert_only_the_task_places_changed(project, copied):
    """The copy differs from the project in the task's new files and in its five places, and
    there only by added lines (an import and one line in each registry); train.py, eval.py,
    options.py and utils/ are byte for byte what they were."""
    edited, new = changed_files(project, copied)
    assert (edited, new) == (EDITED_FILES, NEW_FILES)
    for name in ('train.py', 'eval.py', 'options.py'):
        assert (project / name).read_bytes() == copied[name], name
    utils = sorted(p.relative_to(project).as_posix() for p in (project / 'utils').rglob('*.py'))
    assert utils == sorted(n for n in copied if n.startswith('utils/') and n.endswith('.py'))
    for name in sorted(EDITED_FILES):
        before = copied[name].decode().splitlines()
        diff = list(difflib.ndiff(before, (project / name).read_text().splitlines()))
        assert not [line for line in diff if line.startswith('- ')], f'{name} lost lines'
        added = [line for line in diff if line.startswith('+ ')]
        if name.endswith('_entry.py'):
            assert len(added) == 2, f'{name}: {added}'


@pytest.mark.slow
def test_a_third_task_trains_resumes_and_evaluates_without_editing_the_loop(tmp_path):
    """What the README promises of a new task, done: its files under model/, data/ and task/,
    a loss, a metric and one line per registry are all it takes to train, resume exactly and
    evaluate it. Runs in subprocesses, in the copy, as a user would."""
    project = tmp_path / 'project'
    copied = copy_project(project)
    add_third_task(project)
    runs = tmp_path / 'runs'
    flags = ['--task', 'reg', '--loss', 'mse', '--epochs', '2', '--batch_size', '4',
             '--num_workers', '0', '--print_freq', '1']
    finish(run(project, 'train.py', *flags, '--checkpoints_dir', str(runs / 'straight')))
    reference = runs / 'straight' / 'reg_base_exp'

    # the same run, stopped by SIGTERM in epoch 2's third training step, then resumed
    out = stop_at(project, tmp_path, STEPS + 3,
                  [*flags, '--checkpoints_dir', str(runs / 'stopped')])
    run_dir = runs / 'stopped' / 'reg_base_exp'
    assert f'train.py --resume {run_dir}' in out
    stopped = torch.load(run_dir / 'last.pth', weights_only=True)
    assert (stopped['epoch'], stopped['step']) == (1, 3)
    out = finish(run(project, 'train.py', '--resume', str(run_dir)))
    assert 'Resumed at epoch 2, step 3/6' in out
    assert_same_run(run_dir, reference)

    # eval.py scores best.pth as validation did: the same samples, batches and sums
    best = torch.load(reference / 'best.pth', weights_only=True)
    finish(run(project, 'eval.py', '--load_model_path', str(reference / 'best.pth'),
               '--batch_size', '4', '--save_viz', '--viz_freq', '4'))
    [result_dir] = (reference / 'best').iterdir()
    result = (result_dir / 'result.txt').read_text().splitlines()
    assert f"mae: {best['metrics']['val/mae']:.4f}" in result
    assert 'task: reg' in result and 'num_samples: 8' in result
    picture = cv2.imread(str(result_dir / 'viz' / '00004.png'))  # the task's picture of sample 4
    assert picture.ndim == 3 and picture.shape[2] == 3

    assert_only_the_task_places_changed(project, copied)


def test_a_metric_written_as_metrics_docstring_says_fits_the_loop(tmp_path):
    """The whole contract of metrics.py (sums, update, compute) is what the loop's mechanisms
    need: moving the sums to the device, checking --monitor, recording and zeroing them each
    epoch, and saving them in a checkpoint taken mid-epoch."""

    class MeanValue:  # the contract, and nothing more
        def __init__(self):
            self.sums = {'total': torch.tensor(0.0), 'count': torch.tensor(0.0)}

        def update(self, pred, target):
            self.sums['total'] += pred.sum()
            self.sums['count'] += pred.numel()

        def compute(self):
            return {'mean': (self.sums['total'] / self.sums['count']).item()}

    metric = metric_on(MeanValue(), torch.device('cpu'))
    check_monitor('val/mean', metric)  # computes the zero sums: nan, not an error
    metric.update(torch.tensor([1.0, 2.0, 6.0]), torch.zeros(3))  # a target it does not use

    # mid-epoch: the sums go into a checkpoint and come back into a fresh metric
    logger = Logger(argparse.Namespace(model_dir=str(tmp_path / 'run')))  # where curves go
    torch.save(EpochSums(logger.recorder, metric).state_dict(), tmp_path / 'partial.pth')
    restored = MeanValue()
    state = torch.load(tmp_path / 'partial.pth', weights_only=True)
    EpochSums(logger.recorder, restored).load_state_dict(state)
    totals = {name: total.item() for name, total in restored.sums.items()}
    assert totals == {'total': 9.0, 'count': 3.0}
    assert restored.compute() == {'mean': 3.0}

    # the epoch's end: the score is recorded, and the sums start again from zero
    logger.record_metrics('val', restored)
    assert logger.save_curves(epoch=1) == {'val/mean': 3.0}
    assert all(not total.any() for total in restored.sums.values())
    logger.close()
