"""Stopping cleanly: SIGTERM (a cluster's preemption) and Ctrl-C make the training loop finish
its step, save a resumable checkpoint and exit (train.py); the loader workers ignore both, so
Ctrl-C to the whole process group does not kill them under the main process's feet."""
import signal
import sys
import threading

import torch

from utils.dist import all_reduce, world_size


class StopSignals:
    """While active, SIGTERM (a cluster's preemption) and SIGINT (Ctrl-C) only set `received`:
    the training loop looks at it after each step, saves a resumable checkpoint and exits. A
    second Ctrl-C stops at once."""

    def __init__(self):
        self.received = None  # the signal number once one came
        # under torchrun: whether the processes agreed to stop, at their last agreement
        self.settled = False
        self.previous = {}

    def handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        print(
            f'\n{signal.Signals(signum).name}: stopping after this training step '
            '(in validation: once it ends) to save a resumable checkpoint; '
            'Ctrl-C again stops at once',
            file=sys.stderr,
        )

    def agreed(self, step=0, every=1):
        """Whether to stop now. One process looks at `received`; under torchrun, where a signal
        may reach the processes a step apart, they agree (one collective) every `every` steps,
        and stop together."""
        if world_size() == 1:
            return self.received is not None
        if step % every == 0:  # every process gets here at the same steps
            signum = int(all_reduce(torch.tensor(self.received or 0), op='max'))
            # a signal handled during the collective (its handler runs once it returns) is
            # agreed on next time
            self.received = signum or self.received
            self.settled = bool(signum)
        return self.settled

    def exit(self, status, where):
        """After a stop: marks the RunStatus `status` stopped (with the command that resumes
        the run) and exits with 128 + the signal number, as the shell does."""
        status.stopped(f'by {signal.Signals(self.received).name} {where}; last.pth saved')
        raise SystemExit(128 + self.received)

    def __enter__(self):
        # only the main thread may set handlers
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self.previous[s] = signal.signal(s, self.handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def ignore_stop_signals(worker_id):
    """worker_init_fn of the loaders: workers ignore Ctrl-C and SIGTERM, even sent to the whole
    process group; the main process finishes its step, saves, then shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
