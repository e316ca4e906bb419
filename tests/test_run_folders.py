"""Run folders never collide, files are never left half-written, `python -m utils.runs` sums the
runs up, and --deterministic logs the ops it cannot make deterministic."""
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

import train
from options import prepare_train_args
from utils import runs
from utils.run_dir import close_logging
from utils.run_status import current_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_run_after(barrier, argv, queue):
    barrier.wait()  # every process leaves this line at the same moment
    queue.put(prepare_train_args(argv).model_dir)
    close_logging()


def test_runs_started_at_the_same_moment_get_different_folders(shapes, tmp_path):
    ctx = multiprocessing.get_context('fork')
    n = 6
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    argv = ['--train_list', str(shapes / 'train.txt'), '--val_list', str(shapes / 'val.txt'),
            '--checkpoints_dir', str(tmp_path)]
    procs = [ctx.Process(target=start_run_after, args=(barrier, argv, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    folders = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(folders) == sorted(str(tmp_path / name) for name in
                                     ['base_exp'] + [f'base_exp_{i}' for i in range(2, n + 1)])
    for folder in folders:  # each folder holds the args of exactly one run
        assert json.load(open(os.path.join(folder, 'args.json')))['model_dir'] == folder


WRITER = '''
import sys, time
from utils.checkpoint import atomic_write
def slow(f):
    f.write(b'new, half')
    f.flush()
    print('writing', flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], slow)
'''


def test_a_kill_while_writing_leaves_the_previous_file(tmp_path):
    target = tmp_path / 'last.pth'
    target.write_bytes(b'previous, complete')
    proc = subprocess.Popen(
        [sys.executable, '-c', WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == 'writing\n'
    proc.kill()
    proc.wait()
    assert target.read_bytes() == b'previous, complete'


def write_status(run, **fields):
    run.mkdir(parents=True)
    (run / 'args.json').write_text(json.dumps({
        'model_type': 'base',
        'data_type': 'list',
        'epochs': 4,
        'monitor': 'val/mIoU',
        'lr': 0.1,
    }))
    status = {
        'status': 'running',
        'pid': os.getpid(),
        'host': socket.gethostname(),
        'heartbeat': time.time(),
        'started': '2026-01-01T10:00:00',
        'epochs_done': 2,
        'best_metric': 0.5,
        'best_epoch': 2,
        **fields,
    }
    (run / 'status.json').write_text(json.dumps(status))


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_status_tells_running_from_killed(tmp_path):
    cases = {
        'alive': {},
        'dead_pid': {'pid': dead_pid()},
        'other_host_beating': {'host': 'elsewhere'},
        'other_host_silent': {'host': 'elsewhere', 'heartbeat': time.time() - 3600},
        'done': {'status': 'finished'},
    }
    expected = {
        'alive': 'running',
        'dead_pid': 'killed',
        'other_host_beating': 'running',
        'other_host_silent': 'killed',
        'done': 'finished',
    }
    for name, fields in cases.items():
        write_status(tmp_path / name, **fields)
        status = json.loads((tmp_path / name / 'status.json').read_text())
        assert current_status(status) == expected[name], name


def test_runs_lists_every_run_and_diffs_two(shapes, tmp_path, capsys):
    argv = [
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(tmp_path),
        '--epochs', '1',
        '--batch_size', '4',
    ]
    train.main(argv)
    train.main(argv + ['--lr', '0.01', '--save_prefix', 'fast'])
    write_status(tmp_path / 'base_killed', pid=dead_pid())
    capsys.readouterr()
    runs.main(['--checkpoints_dir', str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        'run', 'started', 'model', 'data', 'epochs', 'best', 'commit', 'status'
    ]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {'base_exp', 'base_fast', 'base_killed'}
    best = torch.load(tmp_path / 'base_exp' / 'best.pth', weights_only=True)['best_metric']
    assert (
        rows['base_exp'].split()[5:8] == ['1/1', 'val/mIoU', f'{best:.4f}']
        and rows['base_exp'].endswith('finished')
    )
    assert rows['base_killed'].split()[5] == '2/4' and rows['base_killed'].endswith('killed')
    runs.main(['--checkpoints_dir', str(tmp_path), '--diff', 'base_exp', 'base_fast'])
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ['flag', '--lr', '--save_prefix', 'best']
    assert (
        out[1].split() == ['--lr', '0.003', '0.01']
        and out[2].split() == ['--save_prefix', '"exp"', '"fast"']
    )
    assert out[3].count('val/mIoU') == 2 and out[3].count('(finished)') == 2
    # same flags can still train a different model: a flag only one run has, another commit,
    # edited model code
    fast = tmp_path / 'base_fast'
    args = json.loads((fast / 'args.json').read_text())
    (fast / 'args.json').write_text(json.dumps(dict(args, new_flag=None)))
    info = json.loads((fast / 'run_info.json').read_text())
    info['git'] = {'commit': 'f' * 40, 'dirty': True}
    info['source_hashes']['model/base/base_model.py'] = '0' * 64
    (fast / 'run_info.json').write_text(json.dumps(info))
    runs.main(['--checkpoints_dir', str(tmp_path), '--diff', 'base_exp', 'base_fast'])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows['--new_flag'] == ['-', 'null'] and rows['commit'][1] == 'ffffffff+dirty'
    assert rows['source'] == ['differs', 'model/base/base_model.py']


def test_load_match_dict_report_is_saved_in_the_run_folder(shapes, tmp_path):
    from model.model_entry import select_model
    from tests.conftest import make_args
    torch.save(select_model(make_args(model_type='better')).state_dict(), tmp_path / 'better.pth')
    train.main([
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(tmp_path),
        '--epochs', '1',
        '--load_model_path', str(tmp_path / 'better.pth'),
        '--load_not_strict',
    ])
    report = json.loads((tmp_path / 'base_exp' / 'load_match_dict.json').read_text())
    assert set(report) == {'loaded', 'missing', 'unexpected', 'mismatched'}
    assert (
        report['missing']
        and report['unexpected']
        and 'head.weight: file (4, 24, 1, 1), model (4, 16, 1, 1)' in report['mismatched']
    )


DETERMINISTIC = '''
import sys, torch
from utils.run_dir import setup_logging
from utils.torch_utils import set_seed
setup_logging(sys.argv[1])
set_seed(0, deterministic=True)
assert (torch.are_deterministic_algorithms_enabled()
        and torch.is_deterministic_algorithms_warn_only_enabled())
# its CUDA kernel has no deterministic version: warns, runs on
torch.histc(torch.rand(10, device='meta'))
print('ran on')
'''


def test_deterministic_logs_an_op_without_a_deterministic_version(tmp_path):
    # In a process of its own: pytest catches warnings itself, and the setting is global.
    p = subprocess.run([sys.executable, '-c', DETERMINISTIC, str(tmp_path / 'train.log')], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.endswith('ran on\n'), p.stderr
    assert (
        '_histc_cuda with floating point input does not have a deterministic implementation'
        in (tmp_path / 'train.log').read_text()
    )


@pytest.mark.parametrize('prefix', ['a/b', '..', ''])
def test_names_that_become_paths_are_checked(prefix, tmp_path):
    from utils.errors import ConfigError
    with pytest.raises(ConfigError, match='names a folder: use a plain name'):
        prepare_train_args(['--save_prefix', prefix, '--checkpoints_dir', str(tmp_path)])
    assert os.listdir(tmp_path) == []


def test_no_shell_runs_a_command_built_from_input():
    sources = [
        os.path.join(d, f)
        for d, _, fs in os.walk(ROOT) if '.venv' not in d and '.git' not in d
        for f in fs if f.endswith('.py') and f != os.path.basename(__file__)
    ]
    for path in sources:
        text = open(path).read()
        for call in ('os.system', 'os.popen', 'shell=True', 'subprocess.getoutput', 'eval(input'):
            assert call not in text, f'{path} uses {call}'
