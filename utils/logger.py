"""Recorder (weighted means over an epoch) and Logger (TensorBoard curves and images, checkpoints).
Name values `train/<name>` and `val/<name>`: TensorBoard then groups them by phase."""
import logging
import os
import re

import torch

from utils.checkpoint import save_checkpoint
from utils.dist import all_reduce, is_main, world_size
from utils.optim import state_copies
from utils.run_dir import write_latest
from utils.run_summary import open_writer, write_run_metrics
from utils.train_state import weights_only

log = logging.getLogger('torchbase')


def checkpoint_sizes(model, args):
    """A line on the checkpoint files of the run, from the model's size: epoch_<N>.pth and
    best.pth hold the weights (and the --ema copy), last.pth adds the optimizer's copies of
    every trainable parameter (state_copies); and what --epochs, --save_freq and --keep_last
    let them take together. A few KiB of flags, metrics and zip headers come on top."""
    def mib(tensors):
        return sum(t.numel() * t.element_size() for t in tensors) / 2 ** 20
    weights = mib(model.state_dict().values()) * (2 if args.ema else 1)
    last = weights + mib(p for p in model.parameters() if p.requires_grad) * state_copies(args)
    saves = len({*range(args.save_freq, args.epochs + 1, args.save_freq), args.epochs})
    kept = min(saves, args.keep_last) if args.keep_last else saves
    return (f'checkpoint files: epoch_<N>.pth {weights:.1f} MiB ({kept} kept), best.pth '
            f'{weights:.1f} MiB, last.pth {last:.1f} MiB: about '
            f'{(kept + 1) * weights + last:.1f} MiB for this run')


class Recorder:
    """Means of named values weighted by n (e.g. the batch size), kept as sums and counts so
    that several processes can add theirs up. Tensors stay on their device, detached: nothing
    waits for the GPU until summary()."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def record(self, name, value, n=1):
        if torch.is_tensor(value) and value.requires_grad:
            value = value.detach()
        self.sums[name] = self.sums.get(name, 0) + value * n
        self.counts[name] = self.counts.get(name, 0) + n

    def all_reduce(self):
        """Adds up the sums and counts of all processes under torchrun (each records the same
        names)."""
        names = sorted(self.sums)
        if world_size() > 1 and names:
            sums_counts = [[float(self.sums[n]), float(self.counts[n])] for n in names]
            totals = all_reduce(torch.tensor(sums_counts, dtype=torch.float64))
            for name, (total, count) in zip(names, totals.tolist(), strict=True):
                self.sums[name], self.counts[name] = total, count

    def summary(self):
        return {name: float(self.sums[name] / self.counts[name]) for name in self.sums}

    def reset(self):
        self.sums, self.counts = {}, {}

    def state_dict(self):
        sums = {k: v.cpu() if torch.is_tensor(v) else v for k, v in self.sums.items()}
        return {'sums': sums, 'counts': dict(self.counts)}

    def load_state_dict(self, state):
        self.sums, self.counts = dict(state['sums']), dict(state['counts'])


def metric_on(metric, device):
    """`metric` (see metrics.py) with its sums on `device`, where update() adds the batches in."""
    metric.sums = {name: total.to(device) for name, total in metric.sums.items()}
    return metric


def sum_over_processes(metric):
    """`metric` with its sums added up over the processes under torchrun, so that compute()
    scores the whole set."""
    metric.sums = {name: all_reduce(total) for name, total in metric.sums.items()}
    return metric


class Logger:
    """The curves, pictures and checkpoints of a training run, written into args.model_dir.
    (prepare_train_args has already sent the log to args.model_dir/train.log.)"""

    def __init__(self, args, purge_step=None):
        self.args = args
        # rank 0 writes, the run's HPARAMS row and TEXT first. purge_step: a resumed run first
        # drops the curves that its killed predecessor wrote after last.pth
        self.writer = open_writer(args, purge_step) if is_main() else None
        self.recorder = Recorder()
        self.saved_once = False

    def record_scalar(self, name, value, n=1):
        self.recorder.record(name, value, n)

    def record_metrics(self, phase, metric):
        """Records the scores of `metric` over the whole epoch as `<phase>/<name>` (from its sums,
        not a mean of batches; under torchrun, those of all the processes added up), then zeroes
        its sums for the next epoch."""
        for name, value in sum_over_processes(metric).compute().items():
            self.record_scalar(f'{phase}/{name}', value)
        for total in metric.sums.values():
            total.zero_()

    def save_curves(self, epoch):
        """Writes the means recorded since the last call as TensorBoard scalars at step
        `epoch`, returns them."""
        self.recorder.all_reduce()
        scalars = self.recorder.summary()
        if self.writer:  # rank 0 alone
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, epoch)
            self.writer.flush()
        self.recorder.reset()
        return scalars

    def save_run_metrics(self, epoch, scalars, progress):
        """The HPARAMS table's metrics after epoch `epoch` (see utils/run_summary.py)."""
        if self.writer:
            write_run_metrics(self.writer, epoch, scalars, self.args.monitor, progress)

    def save_imgs(self, names2imgs, epoch):
        """names2imgs: {tag: (H, W, 3) uint8 RGB image}."""
        for name, img in names2imgs.items() if self.writer else ():
            self.writer.add_image(name, img, epoch, dataformats='HWC')

    def save_check_point(self, state, epoch, is_best, final=False):
        """Writes epoch_<N>.pth every --save_freq epochs and at the end, and best.pth when the
        monitored value improved, both without what only resuming needs (the optimizer state is
        often larger than the model); then last.pth with everything. last.pth goes last: once
        it names epoch N, every file of epoch N is complete, whenever the run is killed. The
        first end-of-epoch save makes this run `latest`, the one eval.py picks."""
        if not is_main():
            return
        weights = weights_only(state)
        # final: --early_stop's
        if epoch % self.args.save_freq == 0 or epoch == self.args.epochs or final:
            save_checkpoint(weights, os.path.join(self.args.model_dir, f'epoch_{epoch}.pth'))
            self.remove_old_epochs()
        if is_best:
            save_checkpoint(weights, os.path.join(self.args.model_dir, 'best.pth'))
        self.save_resume_point(state)
        # after best.pth exists, which is what eval.py reads from the latest run
        if not self.saved_once:
            write_latest(self.args.checkpoints_dir, self.args.model_dir)
            self.saved_once = True

    def save_resume_point(self, state):
        """Writes last.pth alone: at the end of an epoch, or in the middle of one when the run
        is stopped."""
        if is_main():
            save_checkpoint(state, os.path.join(self.args.model_dir, 'last.pth'))

    def remove_old_epochs(self):
        """--keep_last N: deletes all but the newest N epoch_<N>.pth (best.pth and last.pth are
        other files)."""
        if not self.args.keep_last:
            return
        names = (re.fullmatch(r'epoch_(\d+)\.pth', f) for f in os.listdir(self.args.model_dir))
        epochs = sorted(int(m[1]) for m in names if m)
        for epoch in epochs[:-self.args.keep_last]:
            os.remove(os.path.join(self.args.model_dir, f'epoch_{epoch}.pth'))
            log.info(f'--keep_last {self.args.keep_last}: removed epoch_{epoch}.pth')

    def close(self):
        if self.writer:
            self.writer.close()
