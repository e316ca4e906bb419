"""status.json in a run folder: where the run is (running, finished, stopped, failed), its
progress and best value, the pid and host that run it and a heartbeat, so `python -m utils.runs`
can tell a live run from one that was killed without a chance to write anything."""
import contextlib
import datetime
import glob
import json
import logging
import os
import shlex
import socket
import time

from utils.checkpoint import write_text
from utils.dist import is_main, world_size
from utils.errors import ConfigError, user_message
from utils.run_dir import command_line

log = logging.getLogger('torchbase')

HEARTBEAT_SECONDS = 30  # at most one status write per this many seconds while training
STALE_SECONDS = 600  # a run on another host whose heartbeat is older than this counts as killed


class RunStatus:
    def __init__(self, args):
        self.run_dir = args.model_dir
        self.path = os.path.join(args.model_dir, 'status.json')
        old = read_status(args.model_dir) or {}  # a resumed run keeps its start time and progress
        self.fields = {'started': datetime.datetime.now().isoformat(timespec='seconds'),
                       'epochs_done': 0, 'best_metric': None, 'best_epoch': None,
                       **old,
                       'status': 'running', 'pid': os.getpid(), 'host': socket.gethostname(),
                       'epochs_planned': args.epochs, 'monitor': args.monitor, 'message': ''}
        self.fields.update(slurm_fields())
        self.last_write = 0.0

    def update(self, **fields):
        if not is_main():  # under torchrun, rank 0 speaks for the run
            return
        self.fields.update(fields, heartbeat=time.time())
        write_text(self.path, json.dumps(self.fields, indent=2) + '\n')
        self.last_write = time.monotonic()

    @contextlib.contextmanager
    def tracking(self):
        """`running` while the block runs; then `finished`, `failed` (with the error) or, after a
        second Ctrl-C, which leaves no time to save, `stopped` (resumable from the last.pth saved
        before, if any)."""
        self.update()
        try:
            yield
        except KeyboardInterrupt:
            self.stopped('at once by a second Ctrl-C')
            raise
        except BaseException as e:
            if self.fields['status'] == 'running':  # not after a stop signal's SystemExit
                message = user_message(e) or type(e).__name__
                # e.g. a peer gone: say where to look
                if world_size() > 1 and not isinstance(e, ConfigError):
                    message += (' (another process may have failed first: see "[rank N] error" '
                                'in the console)')
                self.update(status='failed', message=message)
            raise
        self.update(status='finished')

    def stopped(self, how):
        """Marks the run stopped and says how to resume it."""
        command = resume_command(self.run_dir)
        self.update(status='stopped', message=f'resume: {command}')
        log.info(f'Stopped {how}. Resume with:\n  {command}')

    def beat(self):
        """Called often (every --print_freq steps); writes only every HEARTBEAT_SECONDS."""
        if time.monotonic() - self.last_write > HEARTBEAT_SECONDS:
            self.update()


# Under SLURM (scripts/train_slurm.sh): the job that trains a run is recorded in its
# status.json, so that a requeued job finds its own run folder and a stopped one is resumed
# through sbatch, not beside SLURM.

def slurm_fields():
    """{'slurm_job_id', 'slurm_restart_count'} of the SLURM job this process runs in (both None
    outside SLURM, so a run resumed outside SLURM is not taken for its old job's)."""
    job = os.environ.get('SLURM_JOB_ID')
    restarts = int(os.environ.get('SLURM_RESTART_COUNT', 0)) if job else None
    return {'slurm_job_id': job, 'slurm_restart_count': restarts}


def resume_command(run_dir):
    """The command that resumes `run_dir`: under SLURM the sbatch command of the job
    (TORCHBASE_SBATCH, which scripts/train_slurm.sh sets) with --resume, which pasted on a login
    node trains under SLURM again."""
    if 'SLURM_JOB_ID' not in os.environ:
        return command_line('train.py', ['--resume', run_dir])
    submit = shlex.quote(os.environ.get('SLURM_SUBMIT_DIR', os.getcwd()))
    sbatch = os.environ.get('TORCHBASE_SBATCH', f'cd {submit} && sbatch scripts/train_slurm.sh')
    return f'{sbatch} --resume {shlex.quote(run_dir)}'


def slurm_run(checkpoints_dir, job_id):
    """The run folder under `checkpoints_dir` that SLURM job `job_id` trained (the newest if
    several), or None: where the job goes on when SLURM requeues it."""
    paths = glob.glob(os.path.join(checkpoints_dir, '**', 'status.json'), recursive=True)
    found = [p for p in paths
             if (read_status(os.path.dirname(p)) or {}).get('slurm_job_id') == str(job_id)]
    return os.path.dirname(max(found, key=os.path.getmtime)) if found else None


def read_status(run_dir):
    """The fields of run_dir/status.json, or None without one. A damaged one (empty, not JSON, not
    the fields that RunStatus writes) is logged and read as None too: it says nothing, so it must
    neither block --resume, which writes a new one, nor stop `python -m utils.runs` from listing
    every other run."""
    path = os.path.join(run_dir, 'status.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path, 'rb') as f:
            fields = json.loads(f.read().decode('utf-8'))
    except (OSError, ValueError) as e:  # ValueError: JSON's and UTF-8's errors
        reason = 'empty' if os.path.getsize(path) == 0 else str(e) or type(e).__name__
        log.warning(f'warning: {path} is damaged ({reason}); read as no status')
        return None
    kinds = {'status': str, 'started': str, 'host': str, 'pid': int, 'epochs_done': int,
             'heartbeat': (int, float), 'best_metric': (int, float, type(None)),
             'best_epoch': (int, type(None))}
    running = isinstance(fields, dict) and fields.get('status') == 'running'
    # what current_status reads
    needed = ('status', 'pid', 'host', 'heartbeat') if running else ('status',)
    valid = isinstance(fields, dict) and all(k in fields for k in needed)
    if valid and all(isinstance(fields[k], kind) for k, kind in kinds.items() if k in fields):
        return fields
    log.warning(f'warning: {path} is damaged (not the fields of a run status: '
                f'{str(fields)[:60]!r}); read as no status')
    return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_status(fields):
    """The saved status, except that a 'running' run whose process is gone (same host) or whose
    heartbeat stopped (another host) was killed: it had no chance to say so."""
    if fields['status'] != 'running':
        return fields['status']
    # SLURM requeued the job (e.g. its node failed): that try is over
    if earlier_try_of_this_job(fields):
        return 'killed'
    if fields['host'] == socket.gethostname():
        return 'running' if pid_alive(fields['pid']) else 'killed'
    return 'running' if time.time() - fields['heartbeat'] < STALE_SECONDS else 'killed'


def earlier_try_of_this_job(fields):
    """Whether `fields` were written by an earlier try of the SLURM job this process runs in."""
    job = fields.get('slurm_job_id')
    if job is None or job != os.environ.get('SLURM_JOB_ID'):
        return False
    return int(os.environ.get('SLURM_RESTART_COUNT', 0)) > (fields.get('slurm_restart_count') or 0)
