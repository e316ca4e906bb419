"""--profile: a torch.profiler trace of a few training steps, saved in the run folder as
trace.json; open it in https://ui.perfetto.dev or chrome://tracing to see where a step spends
its time (data, forward, backward, update)."""
import contextlib
import logging
import os

import torch

from utils.dist import is_main

log = logging.getLogger('torchbase')
# steps skipped, run with the profiler on but not recorded, then recorded
WAIT, WARMUP, ACTIVE = 1, 1, 3


class NoProfiler(contextlib.nullcontext):
    """What the Trainer uses without --profile: step() does nothing."""

    def step(self):
        pass


def make_profiler(args, steps_per_epoch):
    """The profiler the Trainer enters around training and steps after each training step
    (rank 0 only). The trace must end within the first epoch, or it would record validation as
    part of a step."""
    if not (args.profile and is_main()):
        return NoProfiler()
    if steps_per_epoch < WAIT + WARMUP + ACTIVE:
        log.warning(
            f'warning: --profile needs {WAIT + WARMUP + ACTIVE} training steps in an epoch, '
            f'this run has {steps_per_epoch}: no trace'
        )
        return NoProfiler()
    path = os.path.join(args.model_dir, 'trace.json')

    def save(profiler):
        profiler.export_chrome_trace(path)
        log.info(
            f'--profile: trace of {ACTIVE} training steps in {path} '
            '(open it in https://ui.perfetto.dev)'
        )

    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                          if torch.cuda.is_available() else [])
    schedule = torch.profiler.schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1)
    return torch.profiler.profile(
        activities=activities,
        on_trace_ready=save,
        record_shapes=True,
        schedule=schedule,
    )
