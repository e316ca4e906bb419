"""Recorder (weighted means over an epoch) and Logger (TensorBoard curves and images, checkpoints).
Name values `train/<name>` and `val/<name>`: TensorBoard then groups them by phase."""
import os

import torch
from torch.utils.tensorboard import SummaryWriter

from utils.checkpoint import save_checkpoint
from utils.run_dir import write_latest


class Recorder:
    """Means of named values weighted by n (e.g. the batch size), kept as sums and counts so that several
    processes can add theirs up. Tensors stay on their device, detached: nothing waits for the GPU
    until summary()."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def record(self, name, value, n=1):
        if torch.is_tensor(value):
            value = value.detach()
        self.sums[name] = self.sums.get(name, 0) + value * n
        self.counts[name] = self.counts.get(name, 0) + n

    def summary(self):
        return {name: float(self.sums[name] / self.counts[name]) for name in self.sums}

    def reset(self):
        self.sums, self.counts = {}, {}


class Logger:
    """The curves, pictures and checkpoints of a training run, written into args.model_dir.
    (prepare_train_args has already sent the log to args.model_dir/train.log.)"""

    def __init__(self, args):
        self.args = args
        self.writer = SummaryWriter(args.model_dir)
        self.recorder = Recorder()
        self.saved_once = False

    def record_scalar(self, name, value, n=1):
        self.recorder.record(name, value, n)

    def save_curves(self, epoch):
        """Writes the means recorded since the last call as TensorBoard scalars at step `epoch`, returns them."""
        scalars = self.recorder.summary()
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()
        self.recorder.reset()
        return scalars

    def save_imgs(self, names2imgs, epoch):
        """names2imgs: {tag: (H, W, 3) uint8 RGB image}."""
        for name, img in names2imgs.items():
            self.writer.add_image(name, img, epoch, dataformats='HWC')

    def save_check_point(self, state, epoch, is_best):
        """Writes last.pth (everything, for resuming) every epoch; epoch_<N>.pth every --save_freq epochs and
        at the end, and best.pth when the monitored value improved, both without the optimizer state, which
        only resuming needs and which is often larger than the model. The first save makes this run
        `latest`, the run that `python eval.py` evaluates."""
        save_checkpoint(state, os.path.join(self.args.model_dir, 'last.pth'))
        weights = {k: v for k, v in state.items() if k != 'optimizer'}
        if epoch % self.args.save_freq == 0 or epoch == self.args.epochs:
            save_checkpoint(weights, os.path.join(self.args.model_dir, f'epoch_{epoch}.pth'))
        if is_best:
            save_checkpoint(weights, os.path.join(self.args.model_dir, 'best.pth'))
        if not self.saved_once:
            write_latest(self.args.checkpoints_dir, self.args.model_dir)
            self.saved_once = True

    def close(self):
        self.writer.close()
