"""Recorder (weighted means over an epoch) and Logger (TensorBoard curves and images, the run's log file,
checkpoints). Name values `train/<name>` and `val/<name>`: TensorBoard then groups them by phase."""
import logging
import os

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from utils.checkpoint import copy_file, save_checkpoint

log = logging.getLogger('torchbase')


class TqdmHandler(logging.Handler):
    """Prints log lines above the progress bars instead of through them."""

    def emit(self, record):
        tqdm.write(self.format(record))


def setup_logging(log_file):
    """Sends the 'torchbase' log to the console and to `log_file` (replacing earlier handlers)."""
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    log.addHandler(file_handler)
    log.addHandler(TqdmHandler())
    log.setLevel(logging.INFO)
    log.propagate = False


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
    """Everything a training run writes into args.model_dir."""

    def __init__(self, args):
        self.args = args
        setup_logging(os.path.join(args.model_dir, 'train.log'))
        self.writer = SummaryWriter(args.model_dir)
        self.recorder = Recorder()

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
        """Writes last.pth every epoch, epoch_<N>.pth every --save_freq epochs and at the end, and best.pth
        when the monitored metric improved. Saved once, then copied: serialising is the slow part."""
        last = os.path.join(self.args.model_dir, 'last.pth')
        save_checkpoint(state, last)
        if epoch % self.args.save_freq == 0 or epoch == self.args.epochs:
            copy_file(last, os.path.join(self.args.model_dir, f'epoch_{epoch}.pth'))
        if is_best:
            copy_file(last, os.path.join(self.args.model_dir, 'best.pth'))

    def close(self):
        self.writer.close()
