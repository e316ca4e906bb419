"""Runs train.py in a test's subprocess, pausing at one step so that the test can signal a real
training process at a known point.
Usage: python -m tests.paused_train PROGRESS_FILE PAUSE_AT [train.py flags]
Before each call of Trainer.step (training and validation, counted from 1 over the whole
process) it writes the count to PROGRESS_FILE (PROGRESS_FILE.rank<N> for each process under
torchrun); at call PAUSE_AT it writes `<count> <pid> paused` and waits until a stop signal is
received or the file PROGRESS_FILE.release exists."""
import os
import sys
import time

import train
from utils.errors import run_cli


def main():
    progress, pause_at, *argv = sys.argv[1:]
    release = progress + '.release'
    if int(os.environ.get('WORLD_SIZE', 1)) > 1:  # under torchrun: a file per process
        progress += f'.rank{os.environ["RANK"]}'

    step = train.Trainer.step
    calls = 0

    def paused_step(self, data, *model):
        nonlocal calls
        calls += 1
        with open(progress, 'w') as f:
            f.write(f'{calls} {os.getpid()} paused' if calls == int(pause_at) else str(calls))
        deadline = time.time() + 60
        while (
            calls == int(pause_at)
            and self.stop.received is None
            and not os.path.exists(release)
            and time.time() < deadline
        ):
            time.sleep(0.01)  # a SIGKILL ends it here; a SIGTERM or SIGINT lets the step finish
        return step(self, data, *model)

    train.Trainer.step = paused_step
    run_cli(lambda: train.main(argv))


if __name__ == '__main__':
    main()
