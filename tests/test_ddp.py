"""DDP through torchrun on the CPU (gloo): real process groups, launched as users launch them.
Each run: 12 training samples in batches of 2 per process (3 steps an epoch with 2 processes), 6
validation samples (3 per process)."""
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
from task.task_entry import type2task
from tests.conftest import run_name
from tests.test_resume import assert_same_run
from utils.checkpoint import save_checkpoint
from utils.dist import convert_sync_bn, init_distributed
from utils.errors import ConfigError
from utils.run_status import read_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3


def torchrun(*argv, nproc=2, launcher=()):
    """A torchrun (python -m torch.distributed.run) command line; `launcher` replaces
    --standalone."""
    return [
        sys.executable, '-m', 'torch.distributed.run',
        *(launcher or ['--standalone']),
        '--nproc_per_node', str(nproc),
        *argv,
    ]


def run(command, timeout=240):
    p = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    # gloo's abort at exit (see utils/dist.close_distributed)
    assert 'terminate called' not in p.stderr, p.stderr
    return p


def flags(shapes, checkpoints, *extra, task='seg'):
    """A run of `task` on its tiny dataset in the folder `shapes`."""
    return [
        '--task', task,
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(checkpoints),
        '--epochs', str(EPOCHS),
        '--batch_size', '2',
        '--print_freq', '1',
        *extra,
    ]


def runs_in(checkpoints):
    return sorted(d for d in os.listdir(checkpoints) if d != 'latest')


@pytest.fixture(scope='module')
def ddp_run(shapes, tmp_path_factory):
    """An uninterrupted training run of 2 processes."""
    checkpoints = tmp_path_factory.mktemp('ddp')
    p = run(torchrun('train.py', *flags(shapes, checkpoints)))
    assert p.returncode == 0, p.stderr
    return checkpoints / 'base_exp'


@pytest.mark.slow
def test_two_processes_train_one_run_that_rank_0_writes(ddp_run):
    assert (
        runs_in(ddp_run.parent) == ['base_exp']
        and (ddp_run.parent / 'latest').read_text().strip() == 'base_exp'
    )
    assert read_status(ddp_run)['status'] == 'finished'
    last = torch.load(ddp_run / 'last.pth', weights_only=True)
    assert last['epoch'] == EPOCHS and last['world_size'] == 2 and len(last['rng']) == 2
    # loads into 1 process or N alike
    assert not any(k.startswith('module.') for k in last['model'])
    command = (ddp_run / 'command.txt').read_text()
    assert 'scripts/torchrun.py --nnodes 1 --nproc_per_node 2 train.py' in command
    # one TensorBoard writer
    assert len([f for f in os.listdir(ddp_run) if f.startswith('events.out')]) == 1


def read_result(path):
    return dict(line.split(': ', 1) for line in path.read_text().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize('task', list(type2task))
def test_accumulation_and_ema_under_ddp_validate_what_eval_finds(tiny_data, tmp_path, task):
    """--accum_steps skips DDP's all-reduce on the steps that do not update; the EMA's BatchNorm
    buffers, which each process averages from its own batches, are rank 0's in every process
    before validation. Every task."""
    argv = flags(tiny_data[task], tmp_path, '--accum_steps', '2', '--ema', '0.9', task=task)
    p = run(torchrun('train.py', *argv))
    assert p.returncode == 0, p.stderr
    path = tmp_path / run_name(task) / 'best.pth'
    best = torch.load(path, weights_only=True)
    assert best['world_size'] == 2 and 'ema' in best and best['args']['task'] == task
    scores = evaluate.main(['--load_model_path', str(path)])  # one process, the EMA
    assert all(
        f'{scores[k[4:]]:.4f}' == f'{v:.4f}' for k, v in best['metrics'].items() if k[4:] in scores
    )


@pytest.mark.slow
def test_evaluation_with_one_and_two_processes_agree_with_validation(ddp_run):
    best = ddp_run / 'best.pth'
    evaluate.main([
        '--load_model_path', str(best),
        '--save_prefix', 'one',
        '--save_viz',
        '--viz_freq', '2',
    ])
    p = run(torchrun(
        'eval.py',
        '--load_model_path', str(best),
        '--save_prefix', 'two',
        '--save_viz',
        '--viz_freq', '2',
    ))
    assert p.returncode == 0, p.stderr
    one, two = (ddp_run / 'best' / f'shapes_val_{name}' for name in ('one', 'two'))
    assert read_result(one / 'result.txt') == read_result(two / 'result.txt')
    assert read_result(two / 'result.txt')['num_samples'] == '6'
    # what training's sharded validation measured
    metrics = torch.load(best, weights_only=True)['metrics']
    assert all(
        read_result(one / 'result.txt')[k[4:]] == f'{v:.4f}'
        for k, v in metrics.items()
        if k[:4] == 'val/' and k != 'val/loss'
    )
    # pictures are chosen by the sample's index in the list, whichever process evaluated it
    assert (
        sorted(os.listdir(one / 'viz'))
        == sorted(os.listdir(two / 'viz'))
        == ['00000.png', '00002.png', '00004.png']
    )
    assert all(
        (one / 'viz' / f).read_bytes() == (two / 'viz' / f).read_bytes()
        for f in os.listdir(one / 'viz')
    )


@pytest.mark.slow
def test_demo_data_is_made_once_by_rank_0(ddp_run, tmp_path):
    """eval.py under torchrun on the demo list, in a folder without the demo data: rank 0 makes it
    (into a temporary folder, then renamed) while the other process waits, and both evaluate it."""
    command = torchrun(
        os.path.join(ROOT, 'eval.py'),
        '--load_model_path', str(ddp_run / 'best.pth'),
        '--val_list', os.path.join('demo_data', 'shapes', 'val.txt'),
        '--save_prefix', 'demo',
    )
    p = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0 and 'terminate called' not in p.stderr, p.stderr
    assert (
        p.stdout.count('Making the demo dataset') == 1
        and os.listdir(tmp_path / 'demo_data') == ['shapes']
    )
    assert read_result(ddp_run / 'best' / 'shapes_val_demo' / 'result.txt')['num_samples'] == '200'


def start_paused(tmp_path, pause_at, argv):
    """A 2-process torchrun training whose processes both pause before their `pause_at`-th step
    (tests/paused_train.py); returns it once they are there, with {rank: pid}."""
    progress = tmp_path / 'progress'
    proc = subprocess.Popen(
        torchrun('-m', 'tests.paused_train', str(progress), str(pause_at), *argv),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    files = {r: tmp_path / f'progress.rank{r}' for r in (0, 1)}
    deadline = time.time() + 120
    while not all(f.exists() and f.read_text().endswith('paused') for f in files.values()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc, {r: int(f.read_text().split()[1]) for r, f in files.items()}


@pytest.mark.slow
@pytest.mark.parametrize('target', ['torchrun', 'rank_1'])
def test_sigterm_stops_every_process_and_resume_is_exact(shapes, tmp_path, ddp_run, target):
    # step 6 of each process: epoch 1's 3 training and 2 validation steps, then epoch 2's first
    proc, pids = start_paused(tmp_path, 6, flags(shapes, tmp_path))
    if target == 'torchrun':  # as a cluster's preemption: torchrun passes it on to every process
        proc.send_signal(signal.SIGTERM)
    else:  # one process alone: the others learn it at the next step, and all stop there together
        os.kill(pids[1], signal.SIGTERM)
        (tmp_path / 'progress.release').touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and 'terminate called' not in err, err
    run_dir = tmp_path / 'base_exp'
    ckpt = torch.load(run_dir / 'last.pth', weights_only=True)
    assert (
        (ckpt['epoch'], ckpt['step'], ckpt['world_size']) == (1, 1, 2)
        and len(ckpt['partial']) == 2
    )
    status = read_status(run_dir)
    assert status['status'] == 'stopped' and (
        'scripts/torchrun.py --nnodes 1 --nproc_per_node 2 train.py'
        ' --resume'
    ) in status['message']
    # (resuming is the same after either stop; one torchrun start costs 10 s here)
    if target == 'rank_1':
        p = run(torchrun('train.py', '--resume', str(run_dir)))
        assert p.returncode == 0, p.stderr
        assert_same_run(run_dir, ddp_run)  # torch.equal weights, equal metrics, every epoch


@pytest.mark.slow
def test_a_failure_in_one_process_ends_all_resumably_and_names_the_rank(shapes, tmp_path):
    from data.sampler import EpochSampler
    data = tmp_path / 'shapes'
    shutil.copytree(shapes, data)
    sampler = EpochSampler(12, 0, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    bad = int(list(sampler)[2])  # the first sample of process 1's second batch in epoch 2
    image = data / (data / 'train.txt').read_text().splitlines()[bad].split()[0]
    argv = flags(data, tmp_path / 'checkpoints', '--dist_timeout', '60')
    proc, _ = start_paused(tmp_path, 6, argv)
    image.write_bytes(b'not a png')  # breaks while the run is in epoch 2
    (tmp_path / 'progress.release').touch()
    _, err = proc.communicate(timeout=120)
    assert (
        proc.returncode != 0
        and f'[rank 1] error: {data / "train.txt"}:{bad + 1}: cannot read' in err
    ), err
    # rank 0, whose peer ended under it (or which torchrun stopped first): no traceback of its own
    assert '[rank0]: Traceback' not in err
    run_dir = tmp_path / 'checkpoints' / 'base_exp'
    assert read_status(run_dir)['status'] == 'failed'
    # the last good checkpoint, resumable
    last = torch.load(run_dir / 'last.pth', weights_only=True)
    assert (last['epoch'], last['step'], len(last['rng'])) == (1, 0, 2)


@pytest.mark.slow
def test_resume_with_another_number_of_processes_goes_on_at_the_next_epoch(
        shapes, tmp_path, ddp_run, monkeypatch):
    # as if stopped at epoch 2, step 1
    ckpt = torch.load(ddp_run / 'epoch_1.pth', weights_only=True)
    last = torch.load(ddp_run / 'last.pth', weights_only=True)
    run_dir = tmp_path / 'base_exp'
    run_dir.mkdir()
    for name in ('args.json', 'command.txt'):
        (run_dir / name).write_bytes((ddp_run / name).read_bytes())
    ckpt.update(optimizer=last['optimizer'], rng=last['rng'], step=1, partial=[{}, {}], epoch=1)
    ckpt['args']['checkpoints_dir'] = str(tmp_path)
    # as train.py saves it: with the checksum of the new tensors
    save_checkpoint(ckpt, run_dir / 'last.pth')
    train.main(['--resume', str(run_dir)])  # one process
    log = (run_dir / 'train.log').read_text()
    assert 'The run had 2 processes, this one has 1' in log and 'training goes on at epoch 3' in log
    assert 'Resumed at epoch 3, step 0/6' in log
    assert torch.load(run_dir / 'last.pth', weights_only=True)['epoch'] == EPOCHS


def test_where_a_resumed_run_goes_on_with_another_number_of_processes():
    from utils.resume import resume_position
    # as many: exactly there
    assert resume_position({'epoch': 1, 'step': 2, 'world_size': 1}, 3) == (2, 2, 0)
    # at an epoch boundary anyway
    assert resume_position({'epoch': 1, 'step': 0, 'world_size': 2}, 3) == (2, 0, 0)
    # the next boundary
    assert resume_position({'epoch': 1, 'step': 2, 'world_size': 2}, 3) == (3, 0, 0)
    with pytest.raises(ConfigError, match='within its last epoch .3. with 2 processes.*--epochs 4'):
        resume_position({'epoch': 2, 'step': 2, 'world_size': 2}, 3)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_meet_at_a_c10d_rendezvous_on_loopback(shapes, tmp_path):
    launcher = [
        '--nnodes', '2',
        '--rdzv_backend', 'c10d',
        '--rdzv_endpoint', f'127.0.0.1:{free_port()}',
        '--rdzv_id', 'loopback',
    ]
    argv = flags(shapes, tmp_path)
    argv[argv.index('--epochs') + 1] = '1'
    nodes = [
        subprocess.Popen(
            torchrun('train.py', *argv, nproc=1, launcher=launcher),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outs
    assert (
        runs_in(tmp_path) == ['base_exp']
        and read_status(tmp_path / 'base_exp')['status'] == 'finished'
    )
    assert torch.load(tmp_path / 'base_exp' / 'last.pth', weights_only=True)['world_size'] == 2


def test_on_main_gives_rank_0_result_or_error_to_all(monkeypatch, tmp_path, capsys):
    """on_main in a real (one-process) gloo group; its error, raised again in the other processes,
    is not printed there a second time."""
    import torch.distributed as dist

    from utils.dist import close_distributed, on_main
    from utils.errors import run_cli
    def fails(error):
        def fn():
            raise error
        return fn

    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "rendezvous"}', rank=0, world_size=1
    )
    try:
        assert on_main(lambda: {'model_dir': 'x'}) == {'model_dir': 'x'}
        with pytest.raises(ConfigError, match='bad value'):
            on_main(fails(ConfigError('bad value')))
    finally:
        close_distributed()
    echoed = ConfigError('said by rank 0')
    echoed.from_main = True
    with pytest.raises(SystemExit):
        run_cli(fails(echoed))
    assert capsys.readouterr().err == ''


def test_sync_bn_converts_in_place_and_needs_gpus(shapes, tmp_path):
    from model.model_entry import select_model
    from tests.conftest import make_args
    model = select_model(make_args())
    keys = list(model.state_dict())
    assert convert_sync_bn(model) is model and list(model.state_dict()) == keys
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match='no effect in one process'):
            with pytest.raises(ConfigError, match='--sync_bn needs CUDA GPUs'):
                train.main(flags(shapes, tmp_path, '--sync_bn'))
        assert not os.path.exists(tmp_path / 'base_exp')


def test_gpus_and_torchrun_do_not_mix(monkeypatch):
    from tests.conftest import make_args
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(ConfigError, match='--gpus .* and torchrun .* do not mix'):
        init_distributed(make_args(gpus=[0]))
