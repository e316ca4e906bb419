"""scripts/train_slurm.sh: its choices under stand-ins for srun and scontrol (fast, everywhere), and
the whole cycle under a real SLURM through scripts/slurm_check.sh (minutes; skipped where sbatch is
missing, as in CI)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import make_args
from utils.run_status import RunStatus, current_status, read_status, resume_command, slurm_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# srun records what it was asked to run, then does what FAKE_SRUN says; scontrol answers as for a
# running job
FAKE_SRUN = '''#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_DIR/srun_args"
echo "OMP_NUM_THREADS=$OMP_NUM_THREADS" > "$FAKE_DIR/srun_env"
eval "${FAKE_SRUN:-exit 0}"
'''
FAKE_SCONTROL = '''#!/usr/bin/env bash
case "$1 $2" in
  "show hostnames") echo localhost ;;
  "show job") echo "   JobState=${FAKE_STATE:-RUNNING} Reason=None"
              echo "   RunTime=00:00:01 TimeLimit=01:00:00 TimeMin=N/A"
              echo "   Command=$SLURM_SUBMIT_DIR/scripts/train_slurm.sh --epochs 3" ;;
  update*) printf '%s\\n' "$*" >> "$FAKE_DIR/scontrol_updates" ;;
esac
'''


def batch_job(tmp_path, *argv, **env):
    """Runs train_slurm.sh as SLURM would start job 77 on 3 CPUs, with stand-ins for srun and
    scontrol."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'TORCHBASE_'))
             and k not in ('NPROC', 'OMP_NUM_THREADS')}
    job = {'SLURM_JOB_ID': '77', 'SLURM_JOB_NODELIST': 'localhost', 'SLURM_NNODES': '1',
           'SLURM_JOB_NUM_NODES': '1', 'SLURM_CPUS_PER_TASK': '3', 'SLURM_CPUS_ON_NODE': '3',
           'SLURM_JOB_PARTITION': 'cpu', 'SLURM_SUBMIT_DIR': ROOT, 'FAKE_DIR': str(tmp_path)}
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ['PATH']])
    script = os.path.join(ROOT, 'scripts', 'train_slurm.sh')
    p = subprocess.run(
        ['bash', script, '--checkpoints_dir', str(tmp_path), *argv],
        capture_output=True,
        text=True,
        env={**clean, **job, 'PATH': path, **env},
        timeout=60,
    )
    srun_args = tmp_path / 'srun_args'
    srun = srun_args.read_text().splitlines() if srun_args.exists() else []
    return p, srun


def flag(argv, name):
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize('env, nproc, threads', [
    ({}, '3', '1'),  # 3 CPUs: 3 gloo processes
    ({'SLURM_GPUS_ON_NODE': '2', 'SLURM_CPUS_PER_TASK': '16'}, '2', '8'),
    ({'NPROC': '1'}, '1', '3'),
])
def test_processes_per_node_follow_what_the_job_got(tmp_path, env, nproc, threads):
    """One process per GPU given, else per CPU given (no longer 4 for want of
    SLURM_GPUS_ON_NODE)."""
    p, srun = batch_job(tmp_path, **env)
    assert p.returncode == 0, p.stderr
    assert (
        flag(srun, '--nproc_per_node') == nproc
        and (tmp_path / 'srun_env').read_text().strip() == f'OMP_NUM_THREADS={threads}'
    )
    # srun 22.05 does not inherit it
    assert flag(srun, '--cpus-per-task') == env.get('SLURM_CPUS_PER_TASK', '3')


def test_the_batch_file_asks_for_no_gpus_and_logs_under_checkpoints():
    with open(os.path.join(ROOT, 'scripts', 'train_slurm.sh')) as f:
        sbatch = [line.split('#')[1].split()[1] for line in f if line.startswith('#SBATCH')]
    # refused where there is no GPU GRES
    assert not any(s.startswith(('--gpus', '--gres')) for s in sbatch)
    assert '--output=checkpoints/slurm-%j.out' in sbatch and '--open-mode=append' in sbatch
    ignored = subprocess.run(['git', 'check-ignore', '-q', 'checkpoints/slurm-1.out'], cwd=ROOT)
    assert ignored.returncode == 0 or not os.path.isdir(os.path.join(ROOT, '.git'))


def stopped_run(run_dir, job_id='77', status='stopped'):
    run_dir.mkdir()
    (run_dir / 'status.json').write_text(
        json.dumps({'status': status, 'slurm_job_id': job_id}, indent=2) + '\n'
    )


def test_a_clean_stop_ends_the_job_with_the_sbatch_resume_command(tmp_path):
    run = tmp_path / 'base_exp'
    stopped_run(tmp_path / 'saved')  # what train.py leaves after SIGTERM, then exits with 143
    p, _ = batch_job(tmp_path, FAKE_SRUN=f'cp -r {tmp_path / "saved"} {run} && exit 143')
    assert p.returncode == 0, p.stderr
    command = (
        f'cd {ROOT} && sbatch --nodes 1 --cpus-per-task 3 --time 01:00:00 --partition cpu '
        f'scripts/train_slurm.sh --resume {run}'
    )
    assert p.stdout.splitlines()[-1] == f'  {command}' and 'Traceback' not in p.stderr
    comment = (tmp_path / 'scontrol_updates').read_text()
    assert comment == f'update JobId=77 Comment=stopped, resumable: {command}\n'


def test_a_failure_stays_a_failure(tmp_path):
    p, _ = batch_job(tmp_path, FAKE_SRUN='exit 1')
    assert p.returncode == 1 and 'resumable' not in p.stdout


def test_a_requeued_job_resumes_its_own_run_folder(tmp_path):
    stopped_run(tmp_path / 'base_exp', job_id='76')
    stopped_run(tmp_path / 'base_exp_2')
    p, srun = batch_job(tmp_path, '--lr', '0.1', SLURM_RESTART_COUNT='1')
    assert p.returncode == 0, p.stderr
    # its flags: last.pth's
    assert srun[srun.index('train.py') + 1:] == ['--resume', str(tmp_path / 'base_exp_2')]
    assert 'Requeued (restart 1): resuming' in p.stdout


def test_a_first_try_starts_a_new_run(tmp_path):
    stopped_run(tmp_path / 'base_exp')
    _, srun = batch_job(tmp_path, '--lr', '0.1')
    assert (
        srun[2:4] == ['python', 'scripts/torchrun.py']
        and os.path.isfile(os.path.join(ROOT, srun[3]))
    )
    assert srun[srun.index('train.py') + 1:] == ['--checkpoints_dir', str(tmp_path), '--lr', '0.1']


def test_status_records_the_job_and_resumes_through_sbatch(tmp_path, monkeypatch):
    args = make_args(model_dir=str(tmp_path))
    monkeypatch.setenv('SLURM_JOB_ID', '12')
    monkeypatch.setenv('SLURM_RESTART_COUNT', '1')
    monkeypatch.setenv('TORCHBASE_SBATCH', 'cd /p && sbatch --nodes 1 scripts/train_slurm.sh')
    RunStatus(args).stopped('by SIGTERM')
    status = read_status(tmp_path)
    assert (status['slurm_job_id'], status['slurm_restart_count']) == ('12', 1)
    assert status['message'] == (
        f'resume: cd /p && sbatch --nodes 1 scripts/train_slurm.sh --resume {tmp_path}'
    )
    assert (
        slurm_run(str(tmp_path.parent), 12) == str(tmp_path)
        and slurm_run(str(tmp_path.parent), 13) is None
    )
    monkeypatch.delenv('SLURM_JOB_ID')
    assert (
        'train.py --resume' in resume_command(str(tmp_path))
        and 'sbatch' not in resume_command(str(tmp_path))
    )


def test_a_run_left_running_by_an_earlier_try_of_this_job_is_over(monkeypatch):
    """After a node failure the run's status says running, on another host whose heartbeat may be
    recent."""
    fields = {
        'status': 'running',
        'host': 'other',
        'pid': 1,
        'heartbeat': 1e12,
        'slurm_job_id': '12',
        'slurm_restart_count': 0,
    }
    assert current_status(fields) == 'running'
    monkeypatch.setenv('SLURM_JOB_ID', '12')
    monkeypatch.setenv('SLURM_RESTART_COUNT', '1')
    assert current_status(fields) == 'killed'


@pytest.mark.slow
def test_submit_stop_resume_and_requeue_under_a_real_slurm():
    if shutil.which('sbatch') is None:
        pytest.skip(
            'no SLURM here (sbatch is not installed); '
            'scripts/slurm_check.sh, as root, installs one'
        )
    p = subprocess.run(
        ['bash', os.path.join(ROOT, 'scripts', 'slurm_check.sh')],
        capture_output=True,
        text=True,
        env={**os.environ, 'SLURM_CHECK_NO_INSTALL': '1'},
        timeout=900,
    )
    if p.returncode == 77:  # e.g. not root, or the daemons are not installed
        pytest.skip(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0 and 'FAIL' not in p.stdout, p.stdout + p.stderr
