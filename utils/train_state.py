"""What a training checkpoint holds, decided here alone. The Trainer hands over its parts (model,
optimizer, schedule, ...), each with state_dict() / load_state_dict(); save_state turns them into
one dict of tensors and plain values, restore_state puts them back, as litgpt's `state` dict does.
A checkpoint loads with torch.load(weights_only=True)."""
import random

import numpy as np
import torch

from utils.dist import all_gather, world_size

# What only last.pth needs: best.pth and epoch_N.pth hold the weights and what the run was.
RESUME_ONLY = ('optimizer', 'schedule', 'scaler', 'ema_updates', 'rng', 'partial')
# Parts saved once per process under torchrun: each has random states and sums of its own.
PER_PROCESS = ('rng', 'partial')


class Progress:
    """Where training is: `epoch` epochs done plus `step` steps of the next, and the best value of
    --monitor so far with its epoch."""

    def __init__(self):
        self.epoch, self.step = 0, 0
        self.best_metric, self.best_epoch = None, None

    def state_dict(self):
        return {'epoch': self.epoch, 'step': self.step,
                'best_metric': self.best_metric, 'best_epoch': self.best_epoch}

    def load_state_dict(self, state):
        self.epoch, self.step = state['epoch'], state['step']
        self.best_metric, self.best_epoch = state['best_metric'], state['best_epoch']


class EpochSums:
    """The sums of an epoch stopped midway: the logged means (a Recorder) and the training metric's
    sums, so that the resumed epoch reports what one whole epoch would have."""

    def __init__(self, recorder, metric):
        self.recorder, self.metric = recorder, metric

    def state_dict(self):
        sums = {k: v.cpu() for k, v in self.metric.sums.items()}
        return {'recorder': self.recorder.state_dict(), 'metric': sums}

    def load_state_dict(self, state):
        self.recorder.load_state_dict(state['recorder'])
        for name, total in state['metric'].items():
            self.metric.sums[name].copy_(total)


class RandomState:
    """Every global random state, and that of the training loader's generator, which seeds the
    loader's workers as an epoch's iteration starts. mark_epoch() keeps it from before that draw:
    a checkpoint taken mid-epoch goes back there. (The shuffle order needs no state: it is drawn
    from (seed, epoch), see data/sampler.py.)"""

    def __init__(self, loader_generator):
        self.generator = loader_generator
        self.mark_epoch()

    def mark_epoch(self):
        self.loader_state = self.generator.get_state()

    def state_dict(self):
        """Tensors and plain values: weights_only=True refuses numpy objects."""
        version, mt, gauss = random.getstate()
        _, np_mt, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        np_mt = torch.from_numpy(np_mt.astype(np.int64))
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {'python': [version, list(mt), gauss],
                'numpy': [np_mt, np_pos, np_has_gauss, np_gauss],
                'torch': torch.get_rng_state(), 'cuda': cuda, 'loader': self.loader_state}

    def load_state_dict(self, state):
        self.loader_state = state['loader']
        self.generator.set_state(state['loader'])
        version, mt, gauss = state['python']
        random.setstate((version, tuple(mt), gauss))
        np_mt, np_pos, np_has_gauss, np_gauss = state['numpy']
        np_mt = np_mt.numpy().astype(np.uint32)
        np.random.set_state(('MT19937', np_mt, np_pos, np_has_gauss, np_gauss))
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])


def save_state(parts, about):
    """The checkpoint of `parts` ({name: part or None}; 'progress' a Progress) and `about` (args,
    the epoch's metrics, provenance: plain values). Mid-epoch, it holds each process's sums."""
    parts = {name: part for name, part in parts.items() if part is not None}
    progress = parts.pop('progress')
    if not progress.step:  # at an epoch's end there are no partial sums to keep
        parts.pop('partial', None)
    state = {**progress.state_dict(), **about, 'world_size': world_size()}
    for name, part in parts.items():
        state[name] = all_gather(part.state_dict()) if name in PER_PROCESS else part.state_dict()
    # `ema` holds the weights alone, so eval.py and best.pth read it as a model's
    if 'ema' in parts:
        state['ema_updates'] = parts['ema'].updates  # the decay's warm-up goes on from there
    return state


def restore_state(parts, ckpt, position):
    """Puts `parts` back as the checkpoint `ckpt` (a run's last.pth) left them, at `position`:
    (epochs done, steps of the next, this process's item of the per-process entries), from
    utils/resume.resume_position. Random states last: nothing may draw a random number between
    them and the first step."""
    parts = {name: part for name, part in parts.items() if part is not None}
    progress = parts.pop('progress')
    progress.load_state_dict(ckpt)
    progress.epoch, progress.step, index = position
    if 'ema' in parts:
        parts['ema'].updates = ckpt.get('ema_updates', 0)
    if not progress.step:  # at an epoch's start: no partial sums to go on from
        parts.pop('partial', None)
    rng = parts.pop('rng')
    for name, part in parts.items():
        if name in ckpt:  # checkpoints from before a part existed lack it
            part.load_state_dict(own(ckpt[name], index) if name in PER_PROCESS else ckpt[name])
    rng.load_state_dict(own(ckpt['rng'], index))


def own(entry, index):
    """This process's item of a per-process entry (checkpoints before torchrun held one)."""
    return entry[index] if isinstance(entry, list) else entry


def weights_only(state):
    """`state` without what only resuming needs: what best.pth and epoch_N.pth hold."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}
