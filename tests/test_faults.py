"""Faults at the edges of a run, each as a user meets it: a bad sample read by loader workers, two
processes on one run folder, a checkpoint rewritten or deleted while it is evaluated, kills that
leave temporary files, and interrupts during start-up. Each must end in one line and a folder that
is complete or gone, never a hang."""
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import eval as evaluate
import train
from data.make_shapes import make_shapes
from model.model_entry import select_model
from options import prepare_train_args
from tests.conftest import make_args
from tests.test_checkpoint import damage_a_tensor
from tests.test_run_folders import WRITER
from utils import prepare
from utils.checkpoint import atomic_write
from utils.errors import ConfigError, run_cli
from utils.folder_lock import release_folders
from utils.logger import Logger
from utils.run_dir import command_line, make_run_dir
from utils.run_status import read_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, *argv, timeout=60):
    """A fresh process, as a user starts it; a hang fails the test at `timeout` seconds."""
    return subprocess.run(
        [sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope='module')
def lists(tmp_path_factory):
    """40 training and 6 validation 16 px samples, and lists whose line 37 (training) or 5
    (validation) names a file that is not an image."""
    root = tmp_path_factory.mktemp('faults') / 'shapes'
    make_shapes(str(root), n_train=40, n_val=6, size=16, seed=0)
    (root / 'notes.txt').write_text('not an image\n')
    for name, n in (('train', 37), ('val', 5)):
        lines = (root / f'{name}.txt').read_text().splitlines()
        lines[n - 1] = 'notes.txt ' + lines[n - 1].split()[1]
        (root / f'bad_{name}.txt').write_text('\n'.join(lines) + '\n')
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    'script, bad', [('train.py', 'train'), ('train.py', 'val'), ('eval.py', 'val')]
)
def test_bad_sample_with_loader_workers_exits_at_once(lists, tmp_path, script, bad):
    """The workers ignore stop signals sent to the whole process group; after an error, the main
    process must end them itself, or it waits for them forever at exit."""
    val_list = lists / ('bad_val.txt' if bad == 'val' else 'val.txt')
    common = ['--val_list', str(val_list), '--batch_size', '2', '--num_workers', '2']
    if script == 'train.py':
        train_list = lists / ('bad_train.txt' if bad == 'train' else 'train.txt')
        argv = [
            '--train_list', str(train_list),
            '--epochs', '1',
            '--checkpoints_dir', str(tmp_path / 'ck'),
            *common,
        ]
    else:
        weights = tmp_path / 'weights.pth'
        torch.save(select_model(make_args()).state_dict(), weights)
        argv = ['--load_model_path', str(weights), *common]
    p = run_script(script, *argv)
    line = 37 if bad == 'train' else 5
    assert p.returncode == 1, p.stderr
    assert (
        f'error: {lists}/bad_{bad}.txt:{line}: cannot read {lists}/notes.txt: not an image'
        in p.stderr
    )
    assert 'Traceback' not in p.stderr


def hold_resume(run):
    """A process that has taken `run` for --resume and holds it, as a resumed run does in its first
    seconds, before status.json says `running` again."""
    code = ('import sys, time\nfrom options import prepare_train_args\n'
            f'prepare_train_args(["--resume", {str(run)!r}, "--epochs", "3"])\n'
            'print("holding", flush=True)\ntime.sleep(120)\n')
    proc = subprocess.Popen(
        [sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    lines = [proc.stdout.readline() for _ in range(2)]
    assert lines[1] == 'holding\n', lines
    return proc


@pytest.mark.slow
def test_a_second_resume_of_one_run_is_refused_naming_the_pid_that_holds_it(
        train_argv, tmp_path):
    train.main(train_argv)
    run = tmp_path / 'checkpoints' / 'base_exp'
    assert read_status(run)['status'] == 'finished'
    first = hold_resume(run)
    before = {f: (run / f).read_bytes() for f in ('train.log', 'command.txt', 'args.json')}
    try:
        second = run_script('train.py', '--resume', str(run), '--epochs', '3')
    finally:
        first.kill()
        first.wait()
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert lines[0].startswith(
        f'error: --resume {run}: the run is still running (pid {first.pid} on '
    )
    assert f'kill -TERM {first.pid}' in lines[0]
    # the refused process wrote nothing
    assert before == {f: (run / f).read_bytes() for f in before}
    # the operating system releases the lock of a killed process: the run resumes
    third = run_script('train.py', '--resume', str(run), '--epochs', '3')
    assert third.returncode == 0, third.stderr
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 3


def test_a_run_or_result_folder_is_locked_while_its_process_lives(tmp_path):
    folder = make_run_dir(str(tmp_path / 'base_exp'))
    probe = f'from utils.folder_lock import lock_folder; print(lock_folder({folder!r}))'
    try:
        held = subprocess.run(
            [sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True
        )
        assert held.stdout.strip() == f'pid {os.getpid()} on {socket.gethostname()}'
    finally:
        release_folders()
    free = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True)
    assert free.stdout.strip() == 'None'


def test_resume_removes_the_temporary_file_of_a_write_killed_midway(train_argv, tmp_path):
    train.main(train_argv + ['--epochs', '1'])
    run = tmp_path / 'checkpoints' / 'base_exp'
    proc = subprocess.Popen(
        [sys.executable, '-c', WRITER, str(run / 'last.pth')],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == 'writing\n'
    proc.kill()
    proc.wait()
    left = [f for f in os.listdir(run) if f.endswith('.tmp')]
    assert len(left) == 1 and left[0].startswith('.last.pth.')
    train.main(['--resume', str(run), '--epochs', '2'])
    assert not [f for f in os.listdir(run) if f.endswith('.tmp')]
    log = (run / 'train.log').read_text()
    assert f'Removed {left[0]}, left by a process killed while writing it' in log


@pytest.mark.parametrize('where', ['save_command', 'write_run_info', 'select_model'])
def test_ctrl_c_during_start_up_leaves_no_folder(train_argv, tmp_path, monkeypatch, capsys, where):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    module = train if where == 'select_model' else prepare
    monkeypatch.setattr(module, where, interrupted)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: train.main(train_argv))
    assert e.value.code == 130 and 'Traceback' not in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'checkpoints' / 'base_exp')


def test_a_run_is_complete_from_its_start(train_argv, tmp_path, monkeypatch):
    """Killed as its Trainer starts, a run folder already says what it is; the kill shows as
    `killed`."""
    def killed(*a, **k):
        raise SystemExit(137)  # as far as the folder can tell, a SIGKILL here

    monkeypatch.setattr(train, 'select_model', killed)
    with pytest.raises(SystemExit):
        train.main(train_argv)
    run = tmp_path / 'checkpoints' / 'base_exp'
    assert {'args.json', 'command.txt', 'run_info.json', 'status.json'} <= set(os.listdir(run))
    status = read_status(run)
    # this process lives on, the run not
    assert status['status'] == 'running' and status['pid'] == os.getpid()


def test_resume_of_a_run_killed_before_its_run_info_writes_it(train_argv, tmp_path):
    train.main(train_argv + ['--epochs', '1'])
    run = tmp_path / 'checkpoints' / 'base_exp'
    (run / 'run_info.json').unlink()
    train.main(['--resume', str(run), '--epochs', '2'])
    assert json.loads((run / 'run_info.json').read_text())['git']


@pytest.fixture(scope='module')
def trained(shapes, tmp_path_factory):
    """A finished two-epoch run: its best.pth and epoch_1.pth (other weights of the same model)."""
    checkpoints = tmp_path_factory.mktemp('trained')
    train.main([
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(checkpoints),
        '--epochs', '2',
        '--batch_size', '4',
        '--save_prefix', 'ref',
    ])
    return checkpoints / 'base_ref'


def result(folder):
    return dict(line.split(': ', 1) for line in (folder / 'result.txt').read_text().splitlines())


def evaluate_while(monkeypatch, ckpt, act):
    """eval.py on `ckpt`, with `act()` run once the Evaluator is built, before it scores: what a
    training run that rewrites best.pth, or --keep_last deleting an epoch_N.pth, may do at any
    moment."""
    original = evaluate.Evaluator.eval

    def acting(self):
        act()
        return original(self)

    monkeypatch.setattr(evaluate.Evaluator, 'eval', acting)
    evaluate.main(['--load_model_path', str(ckpt), '--save_prefix', 'while'])
    return next(ckpt.parent.glob(f'{ckpt.stem}/*_while'))


def test_result_names_the_bytes_it_scored_when_the_checkpoint_is_replaced_meanwhile(
        trained, tmp_path, monkeypatch):
    ckpt = tmp_path / 'run' / 'best.pth'
    ckpt.parent.mkdir()
    shutil.copy(trained / 'best.pth', ckpt)
    evaluate.main(['--load_model_path', str(ckpt), '--save_prefix', 'quiet'])
    quiet = result(ckpt.parent / 'best' / 'shapes_val_quiet')
    scored = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # training writes a new best.pth as it does: another file renamed over this one
    new = (trained / 'epoch_2.pth').read_bytes()
    folder = evaluate_while(
        monkeypatch, ckpt, lambda: atomic_write(str(ckpt), lambda f: f.write(new))
    )
    replaced = result(folder)
    assert replaced['checkpoint_sha256'] == quiet['checkpoint_sha256'] == scored
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() != scored  # the file was replaced...
    # ...not what was scored
    assert replaced['mIoU'] == quiet['mIoU'] and replaced['pixel_acc'] == quiet['pixel_acc']
    assert replaced['model_type'] == 'base'


def test_evaluation_outlives_its_checkpoint_being_deleted(trained, tmp_path, monkeypatch):
    ckpt = tmp_path / 'run' / 'epoch_1.pth'
    ckpt.parent.mkdir()
    shutil.copy(trained / 'epoch_1.pth', ckpt)
    scored = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    folder = evaluate_while(monkeypatch, ckpt, ckpt.unlink)
    assert not ckpt.exists() and result(folder)['checkpoint_sha256'] == scored


def test_a_checkpoint_sha256_that_differs_is_refused(trained, capsys):
    argv = ['--load_model_path', str(trained / 'best.pth'), '--checkpoint_sha256', 'ab12']
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: evaluate.main(argv))
    err = capsys.readouterr().err
    assert e.value.code == 1 and '--checkpoint_sha256 ab12: ' in err and 'another file' in err


def test_list_paths_are_stored_absolute_so_another_working_folder_reads_the_same_files(
        shapes, tmp_path, monkeypatch):
    first, second = tmp_path / 'first', tmp_path / 'second'
    # a list of the same name in each: 6 samples, then 1
    for folder, n in ((first, 6), (second, 1)):
        folder.mkdir()
        lines = (shapes / 'val.txt').read_text().splitlines()[:n]
        (folder / 'ok.txt').write_text(
            ''.join(f'{shapes}/{line.split()[0]} {shapes}/{line.split()[1]}\n' for line in lines)
        )
    monkeypatch.chdir(first)
    train.main([
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', 'ok.txt',
        '--checkpoints_dir', str(tmp_path / 'ck'),
        '--epochs', '1',
        '--batch_size', '4',
    ])
    run = tmp_path / 'ck' / 'base_exp'
    assert json.loads((run / 'args.json').read_text())['val_list'] == str(first / 'ok.txt')
    monkeypatch.chdir(second)
    evaluate.main(['--load_model_path', str(run / 'best.pth')])
    scores = result(next((run / 'best').iterdir()))
    assert scores['eval_list'] == str(first / 'ok.txt') and scores['num_samples'] == '6'


def test_a_full_disk_anywhere_is_one_line(train_argv, tmp_path, monkeypatch, capsys):
    """Checkpoints say which file could not be written (tests/test_bad_inputs.py); a full disk met
    elsewhere, here by TensorBoard's event file, is one line too, and the run is marked failed."""
    events = tmp_path / 'checkpoints' / 'base_exp' / 'events.out.tfevents'

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(events))

    monkeypatch.setattr(Logger, 'save_curves', full)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: train.main(train_argv))
    err = capsys.readouterr().err
    assert e.value.code == 1 and 'Traceback' not in err
    assert f'error: No space left on device: {events}; free space on that disk' in err
    status = read_status(events.parent)
    assert status['status'] == 'failed' and 'No space left on device' in status['message']


def test_the_resume_command_runs_from_the_folder_it_names(train_argv, tmp_path, monkeypatch):
    """python ../torchbase/train.py ... from another folder: the printed command must name that
    train.py."""
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert command_line('train.py', ['--resume', 'a b']) == (
        f'cd {elsewhere} && {sys.executable} {ROOT}/train.py --resume \'a b\''
    )
    monkeypatch.chdir(ROOT)
    assert command_line('train.py', ['--resume', 'x']) == (
        f'cd {ROOT} && {sys.executable} train.py --resume x'
    )


def test_a_disk_full_as_the_run_folder_is_made_leaves_no_folder(train_argv, tiny_tmpfs, capsys):
    with open(tiny_tmpfs / 'fill', 'wb', buffering=0) as f, contextlib.suppress(OSError):
        while True:  # fill the disk up to its last byte
            f.write(b'\0' * 1024)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: train.main(train_argv + ['--checkpoints_dir', str(tiny_tmpfs / 'runs')]))
    err = capsys.readouterr().err
    assert e.value.code == 1 and 'Traceback' not in err and 'No space left on device' in err, err
    assert os.listdir(tiny_tmpfs) == ['fill'], (err, list(os.walk(tiny_tmpfs)))


@pytest.mark.parametrize('content', [[1, 2], torch.zeros(3), None, {'args': 'x', 'model': {}}],
                         ids=['list', 'tensor', 'none', 'args_not_a_dict'])
def test_a_torch_file_that_holds_no_weights_is_one_line(content, train_argv, tmp_path, capsys):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    for main, argv in ((train.main, train_argv + ['--load_model_path', str(path)]),
                       (evaluate.main, ['--load_model_path', str(path)])):
        with pytest.raises(SystemExit) as e:
            run_cli(lambda: main(argv))  # noqa: B023 (called at once)
        err = capsys.readouterr().err
        assert e.value.code == 1 and 'Traceback' not in err and f'error: {path}' in err, err
    assert os.listdir(tmp_path) == ['odd.pth']


def test_a_partial_load_in_eval_says_how_much_of_the_model_was_loaded(trained, tmp_path):
    """eval.py --load_not_strict of another model's checkpoint scores a partly untrained model:
    result.txt says so, and does not take the other model's source files for changed ones."""
    ckpt = tmp_path / 'run' / 'best.pth'
    ckpt.parent.mkdir()
    shutil.copy(trained / 'best.pth', ckpt)
    evaluate.main(['--load_model_path', str(ckpt), '--model_type', 'better', '--load_not_strict'])
    folder = next((ckpt.parent / 'best').iterdir())
    report = json.loads((folder / 'load_match_dict.json').read_text())
    better = select_model(make_args(model_type='better'))
    loaded, own = len(report['loaded']), len(better.state_dict())
    assert 0 < loaded < own
    scores = result(folder)
    assert scores['weights'] == (
        f"model ({loaded} of the model's {own} tensors loaded: load_match_dict.json)"
    )
    assert scores['model_type'] == 'better'
    assert scores['source_changed'] == 'not compared: trained as --model_type base, built as better'


def test_resume_messages_say_what_is_wrong(trained, tmp_path):
    run = tmp_path / 'run'
    shutil.copytree(trained, run)
    try:
        with pytest.raises(
            ConfigError,
            match=(
                r'--epochs 1: the run has done 2 epochs already \(of the 2 it planned\); '
                'leave --epochs out to go on to 2, or pass --epochs N with N > 2'
            ),
        ):
            prepare_train_args(['--resume', str(run), '--epochs', '1'])
        with pytest.raises(ConfigError, match='the run has done all the 2 epochs it had planned'):
            prepare_train_args(['--resume', str(run)])
    finally:
        release_folders()
    damage_a_tensor(run / 'last.pth')
    with pytest.raises(
        ConfigError,
        match=(
            'last.pth is damaged: .*--resume cannot go on exactly without a whole '
            'last.pth: start a new run from the weights of .*with --load_model_path'
        ),
    ):
        train.main(['--resume', str(run), '--epochs', '3'])


def test_a_run_removes_the_stale_temporary_latest_of_a_killed_one(train_argv, tmp_path):
    checkpoints = tmp_path / 'checkpoints'
    checkpoints.mkdir()
    stale, fresh = checkpoints / '.latest.0badf00d.tmp', checkpoints / '.latest.5eed5eed.tmp'
    for path in (stale, fresh):
        path.write_text('base_ex')
    # killed an hour ago; `fresh` may be in progress
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    train.main(train_argv + ['--epochs', '1'])
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize('how', ['sigterm', 'ctrl_c'])
def test_an_evaluation_stopped_midway_leaves_no_result_folder(
        trained, tmp_path, monkeypatch, capsys, how):
    ckpt = tmp_path / 'run' / 'best.pth'
    ckpt.parent.mkdir()
    shutil.copy(trained / 'best.pth', ckpt)

    def stopped(*a):
        if how == 'sigterm':
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate.Evaluator, 'compute_metrics', stopped)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: evaluate.main(['--load_model_path', str(ckpt)]))
    assert e.value.code == (128 + signal.SIGTERM if how == 'sigterm' else 130)
    assert 'Traceback' not in capsys.readouterr().err
    assert os.listdir(ckpt.parent) == ['best.pth'] and signal.getsignal(signal.SIGTERM) == before
