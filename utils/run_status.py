"""status.json in a run folder: where the run is (running, finished, stopped, failed), its progress and best
value, the pid and host that run it and a heartbeat, so `python -m utils.runs` can tell a live run from one
that was killed without a chance to write anything."""
import datetime
import json
import os
import socket
import time

from utils.checkpoint import write_text

HEARTBEAT_SECONDS = 30  # at most one status write per this many seconds while training
STALE_SECONDS = 600  # a run on another host whose heartbeat is older than this counts as killed


class RunStatus:
    def __init__(self, args):
        self.path = os.path.join(args.model_dir, 'status.json')
        old = read_status(args.model_dir) or {}  # a resumed run keeps its start time and progress
        self.fields = {'started': datetime.datetime.now().isoformat(timespec='seconds'), 'epochs_done': 0,
                       'best_metric': None, 'best_epoch': None, **old, 'status': 'running', 'pid': os.getpid(),
                       'host': socket.gethostname(), 'epochs_planned': args.epochs, 'monitor': args.monitor,
                       'message': ''}
        self.last_write = 0.0

    def update(self, **fields):
        self.fields.update(fields, heartbeat=time.time())
        write_text(self.path, json.dumps(self.fields, indent=2) + '\n')
        self.last_write = time.monotonic()

    def beat(self):
        """Called often (every --print_freq steps); writes only every HEARTBEAT_SECONDS."""
        if time.monotonic() - self.last_write > HEARTBEAT_SECONDS:
            self.update()


def read_status(run_dir):
    path = os.path.join(run_dir, 'status.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_status(fields):
    """The saved status, except that a 'running' run whose process is gone (same host) or whose heartbeat
    stopped (another host) was killed: it had no chance to say so."""
    if fields['status'] != 'running':
        return fields['status']
    if fields['host'] == socket.gethostname():
        return 'running' if pid_alive(fields['pid']) else 'killed'
    return 'running' if time.time() - fields['heartbeat'] < STALE_SECONDS else 'killed'
