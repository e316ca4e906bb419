"""Trains the model chosen by --model_type for the task chosen by --task, and validates it after
each epoch. Run: python train.py [flags]   (-h lists them; no flags: the segmentation demo)
A new task does not edit this file: see task/task_entry.py."""
import logging
import math
import shutil
import time
from contextlib import nullcontext

import torch
from tqdm import tqdm

from data.data_entry import close_loaders, select_eval_loader, select_train_loader
from model.model_entry import equip_multi_gpu, select_model
from options import TEMPORARY, chosen_classes, prepare_train_args
from task.task_entry import select_task
from utils.checks import check_monitor
from utils.dist import all_reduce, broadcast_buffers, close_distributed, is_distributed, is_main
from utils.errors import ConfigError, run_cli
from utils.folder_lock import release_folders
from utils.logger import Logger, checkpoint_sizes, metric_on
from utils.optim import LRSchedule, ModelEMA, amp_dtype, autocast, build_optimizer, improved
from utils.profile import make_profiler
from utils.provenance import provenance
from utils.resume import load_last, resume_position
from utils.run_dir import remove_run_dir
from utils.run_status import RunStatus
from utils.stop import StopSignals
from utils.torch_utils import get_device, set_seed, write_model_summary
from utils.train_state import EpochSums, Progress, RandomState, restore_state, save_state
from utils.weights import load_backbone, load_model_weights

log = logging.getLogger('torchbase')
# The progress bars redraw at most once a second: at tqdm's default of 10 redraws a second,
# the demos' training measured 0.5-1 % slower (scripts/benchmark.py, steps alternated)
BAR_SECONDS = 1.0
# Small training batches wait and go into the metric HELD_STEPS at a time (see compute_metrics)
HELD_STEPS, HELD_ELEMENTS = 16, 2 ** 16


class Trainer:
    def __init__(self, args):
        self.args = args
        set_seed(args.seed, args.deterministic)
        # names the forward op behind a NaN gradient; slow
        torch.autograd.set_detect_anomaly(args.detect_anomaly)
        self.device = get_device(args)
        self.task = select_task(args, self.device)
        self.train_loader = select_train_loader(args)
        self.val_loader = select_eval_loader(args)
        self.steps_per_epoch = len(self.train_loader)
        self.build_model()
        self.optimizer = build_optimizer(self.raw_model, args)
        write_model_summary(self.raw_model, args.model_dir,
                            checkpoint_sizes(self.raw_model, args))
        self.schedule = LRSchedule(self.optimizer, args, self.steps_per_epoch)
        self.amp_dtype = amp_dtype(args, self.device)  # None without --amp
        float16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=float16)
        self.metrics = {phase: metric_on(self.task.make_metrics(), self.device)
                        for phase in ('train', 'val')}
        check_monitor(args.monitor, self.metrics['val'])
        # integers add up the same in any grouping: the training metric's batches can be held
        sums = self.metrics['train'].sums.values()
        self.counts_only = not any(t.is_floating_point() for t in sums)
        self.held = []  # (prediction, target) of training steps, not yet in the metric
        # (loss on the device, batch size) of the steps since the last check_loss
        self.recent_losses = []
        self.start_state()
        self.status = RunStatus(args)
        self.stop = StopSignals()
        self.profiler = make_profiler(args, self.steps_per_epoch)

    def build_model(self):
        """The model, from scratch or from --weights_backbone and --load_model_path (strict,
        or partial with --load_not_strict), its EMA, and what trains it (compiled, wrapped for
        several GPUs)."""
        args = self.args
        # unwrapped: what checkpoints hold, with no `module.` prefix
        self.raw_model = select_model(args)
        if args.weights_backbone and not args.resume:  # --resume loads its last.pth instead
            load_backbone(self.raw_model, args.weights_backbone)
        if args.load_model_path and not args.resume:
            load_model_weights(self.raw_model, args.load_model_path, not args.load_not_strict,
                               args.model_dir, load_into=args.load_into,
                               prefixes=args.load_prefix)
        self.raw_model.to(self.device, memory_format=self.task.memory_format)
        self.ema = ModelEMA(self.raw_model, args.ema) if args.ema else None
        model = torch.compile(self.raw_model) if args.compile else self.raw_model
        self.model = equip_multi_gpu(model, args)
        # what is validated and decides best.pth
        self.eval_model = self.ema.module if self.ema else self.model

    def start_state(self):
        """What a checkpoint holds, and the Logger; with --resume, put back where the run's
        last.pth left off (a run that wrote none starts afresh in its folder)."""
        args = self.args
        ckpt = load_last(args.resume) if args.resume else None
        self.progress = Progress()
        self.rng = RandomState(self.train_loader.generator)
        # purge_step: curves that a killed run wrote after its last.pth are dropped
        purge = ckpt['epoch'] + 1 if ckpt else 1 if args.resume else None
        self.logger = Logger(args, purge_step=purge)
        # Each part by its state_dict(): saved and restored by utils/train_state.py
        self.state = {'model': self.raw_model, 'optimizer': self.optimizer,
                      'schedule': self.schedule, 'scaler': self.scaler, 'ema': self.ema,
                      'progress': self.progress, 'rng': self.rng,
                      'partial': EpochSums(self.logger.recorder, self.metrics['train'])}
        # what every checkpoint says about the run: its flags, commit and source hashes
        self.about = {'args': dict(vars(args)), **provenance(chosen_classes(args))}
        if ckpt:
            start, step, index = resume_position(ckpt, args.epochs)
            restore_state(self.state, ckpt, (start - 1, step, index))
            log.info(f'Resumed at epoch {start}, step {step}/{self.steps_per_epoch}')
        elif args.resume:
            log.info('The run stopped before its first checkpoint: training it again from '
                     'epoch 1')

    def train(self):
        """The epochs after progress.epoch, up to --epochs. SIGTERM or Ctrl-C: saves a resumable
        last.pth and exits with 128 + the signal number."""
        try:
            # signals are held until status.json says how the run ended
            with self.stop, self.status.tracking(), self.profiler:
                for epoch in range(self.progress.epoch + 1, self.args.epochs + 1):
                    done = self.train_per_epoch(epoch, self.progress.step)
                    if done < self.steps_per_epoch:  # a stop in validation waits for its end
                        self.progress.epoch, self.progress.step = epoch - 1, done
                        self.logger.save_resume_point(self.checkpoint({}))
                        where = f'at epoch {epoch}, step {done}/{self.steps_per_epoch}'
                        self.stop.exit(self.status, where)
                    self.progress.epoch, self.progress.step = epoch, 0
                    self.val_per_epoch(epoch)
                    if self.end_epoch(epoch):  # --early_stop
                        break
                    if self.stop.agreed() and epoch < self.args.epochs:
                        self.stop.exit(self.status, f'after epoch {epoch}')
        finally:
            self.logger.close()
        log.info(f'Done. Checkpoints and curves: {self.args.model_dir} '
                 f'(tensorboard --logdir {self.args.checkpoints_dir})')

    def train_per_epoch(self, epoch, skip=0):
        """Trains epoch `epoch`, or its steps after the first `skip` when resuming; returns the
        steps done (fewer than all when a signal stopped it)."""
        self.model.train()
        self.epoch_start = time.time()
        # the order is (seed, epoch)'s; a resumed epoch skips the samples it has trained on
        self.train_loader.sampler.set_epoch(epoch, skip * self.args.batch_size)
        self.rng.mark_epoch()  # before the loader draws its workers' seeds
        bar = tqdm(self.train_loader, desc=f'train {epoch}/{self.args.epochs}', leave=False,
                   dynamic_ncols=True, initial=skip, total=self.steps_per_epoch,
                   mininterval=BAR_SECONDS, disable=not is_main())
        for i, data in enumerate(bar, start=skip):
            with autocast(self.device, self.amp_dtype):
                img, pred, label = self.step(data, self.model)
                loss = self.compute_loss(pred, label)
            self.optimize(loss, epoch, i)
            self.compute_metrics(pred, label, is_train=True)
            # checked for NaN and recorded by check_loss below: no wait for the GPU at every
            # step
            self.recent_losses.append((loss.detach(), img.shape[0]))
            self.profiler.step()
            if i % self.args.print_freq == 0:
                # shown at the bar's next redraw
                bar.set_postfix(loss=f'{self.check_loss(epoch, i):.4f}', refresh=False)
                self.status.beat()
            if self.stopped_after(i):
                self.check_loss(epoch, i)
                self.add_held()  # before the checkpoint saves the metric's sums
                return i + 1
        self.check_loss(epoch, i)
        self.add_held()
        pictures = self.gen_imgs_to_write(img, pred, label, is_train=True)
        self.logger.save_imgs(pictures, epoch)
        self.logger.record_metrics('train', self.metrics['train'])
        self.rng.mark_epoch()  # the next epoch's starting point
        return self.steps_per_epoch

    def stopped_after(self, i):
        """Whether a signal stops the epoch after step i. Asked before the loader is asked for
        another batch (under torchrun, the processes agree every --print_freq steps), and only
        after an update: the gradients summed so far by --accum_steps are not saved."""
        stop = self.stop.agreed(i + 1, self.args.print_freq)
        return stop and (i + 1) % self.args.accum_steps == 0 and i + 1 < self.steps_per_epoch

    @torch.no_grad()
    def val_per_epoch(self, epoch):
        """Validates the model, or its EMA with --ema."""
        self.eval_model.eval()
        # under torchrun: every process validates rank 0's model, the one saved
        broadcast_buffers(self.ema.module if self.ema else self.raw_model)
        bar = tqdm(self.val_loader, desc=f'val {epoch}', leave=False, dynamic_ncols=True,
                   mininterval=BAR_SECONDS, disable=not is_main())
        for i, data in enumerate(bar):
            with autocast(self.device, self.amp_dtype):
                img, pred, label = self.step(data, self.eval_model)
                loss = self.compute_loss(pred, label)
            self.logger.record_scalar('val/loss', loss, n=img.shape[0])
            self.compute_metrics(pred, label, is_train=False)
            if i == 0:  # the same images every epoch, so the pictures show the progress
                pictures = self.gen_imgs_to_write(img, pred, label, is_train=False)
                self.logger.save_imgs(pictures, epoch)
            if i % self.args.print_freq == 0:
                self.status.beat()
        self.logger.record_metrics('val', self.metrics['val'])

    def step(self, data, model):
        """(input, prediction, target) of a batch: the task unpacks it and runs the model."""
        return self.task.forward(model, data)

    def compute_loss(self, pred, label):
        return self.task.loss(pred, label)

    def optimize(self, loss, epoch, i):
        """Backward at every step; an update every --accum_steps steps and at the epoch's end.
        The loss is divided by the steps of its window, so the gradient is their mean. Then
        --clip_grad, the step and --ema."""
        start = i - i % self.args.accum_steps
        window = min(self.args.accum_steps, self.steps_per_epoch - start)  # fewer at the end
        update = i + 1 == start + window
        # DDP: no all-reduce of the gradients until the update
        no_sync = not update and is_distributed()
        with self.model.no_sync() if no_sync else nullcontext():
            # scale: float16's GradScaler (a no-op otherwise)
            self.scaler.scale(loss / window if window > 1 else loss).backward()
        if not update:
            return
        if self.args.clip_grad:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            params = self.raw_model.parameters()
            torch.nn.utils.clip_grad_norm_(params, self.args.clip_grad)
        self.schedule.set_lr(epoch, i)
        # skipped, with float16, when the gradients hold an inf or nan
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema:
            self.ema.update(self.raw_model)

    def compute_metrics(self, pred, label, is_train):
        """Adds the batch into the phase's metric. In training, a small batch waits when the
        metric counts in integers, and add_held() gives the metric those of HELD_STEPS steps
        at once: in a training loop, each small operation of the update took 15-80 us on the
        CPU, 0.3 ms a step in all, 1-2 % of a `cls` demo step. Counts add up the same however
        the batches are grouped, so the sums (and an exact resume) do not change."""
        pred = pred.detach()
        if not (is_train and self.counts_only and holdable(pred, label)):
            self.metrics['train' if is_train else 'val'].update(pred, label)
            return
        if self.held and not joinable(self.held[0], (pred, label)):
            self.add_held()
        self.held.append((pred, label))
        if len(self.held) == HELD_STEPS:
            self.add_held()

    def add_held(self):
        """Adds the held training batches into the training metric, joined along the batch
        dimension (see compute_metrics)."""
        if self.held:
            preds = torch.cat([pred for pred, _ in self.held])
            labels = torch.cat([label for _, label in self.held])
            self.metrics['train'].update(preds, labels)
            self.held = []

    def gen_imgs_to_write(self, img, pred, label, is_train):
        """{tag: (H, W, 3) uint8 picture} for TensorBoard: the batch's first sample."""
        phase = 'train' if is_train else 'val'
        return {f'{phase}/viz': self.task.picture(img[0], pred[0], label[0])}

    def checkpoint(self, scalars):
        """The checkpoint of the run as it is now, with `scalars`: the epoch's values."""
        return save_state(self.state, {**self.about, 'metrics': scalars})

    def end_epoch(self, epoch):
        """Curves, checkpoints and status after epoch `epoch`; True when --early_stop ends it."""
        args, progress = self.args, self.progress
        lr = self.optimizer.param_groups[0]['lr']  # that of the epoch's last update
        self.logger.record_scalar('train/lr', lr)
        scalars = self.logger.save_curves(epoch)
        value = scalars[args.monitor]
        if improved(value, progress.best_metric, args.monitor_mode):
            progress.best_metric, progress.best_epoch = value, epoch
        self.logger.save_run_metrics(epoch, scalars, progress)  # HPARAMS' columns
        self.schedule.end_epoch(value)
        stale = epoch - progress.best_epoch
        stop = bool(args.early_stop) and stale >= args.early_stop and epoch < args.epochs
        is_best = progress.best_epoch == epoch
        self.logger.save_check_point(self.checkpoint(scalars), epoch, is_best, final=stop)
        self.status.update(epochs_done=epoch, best_metric=progress.best_metric,
                           best_epoch=progress.best_epoch)
        shown = ('train/loss', 'val/loss', args.monitor)
        values = ' '.join(f'{k} {scalars[k]:.4f}' for k in dict.fromkeys(shown))
        log.info(f'epoch {epoch}/{args.epochs} {values} lr {lr:.3g} | best {args.monitor} '
                 f'{progress.best_metric:.4f} (epoch {progress.best_epoch}) | '
                 f'{time.time() - self.epoch_start:.1f}s')
        if stop:
            self.status.update(message=f'early stop after epoch {epoch}: {args.monitor} has not '
                                       f'improved for {args.early_stop} epochs; best.pth is '
                                       f'epoch {progress.best_epoch}')
            log.info(self.status.fields['message'])
        return stop

    def check_loss(self, epoch, i):
        """Stops the run at a non-finite loss, before a checkpoint can save the weights it
        spoilt, then records the losses as train/loss; returns the loss of step i, the last,
        as a number. Takes the steps since its last call at once, with one wait for the device
        (.tolist()): it is called every --print_freq steps, at a stop and at the epoch's end.
        At every step, the two small operations of recording a tensor took 50-80 us on the
        CPU; the losses come here as numbers, in the order of the steps."""
        if not self.recent_losses:  # no step since the last call
            return None
        values = torch.stack([loss for loss, _ in self.recent_losses]).tolist()
        sizes = [n for _, n in self.recent_losses]
        self.recent_losses = []
        # the epoch's step of the first non-finite loss, -1 if none
        bad = next((k for k, v in enumerate(values) if not math.isfinite(v)), None)
        step = -1 if bad is None else i + 1 - len(values) + bad
        if is_distributed():  # a NaN in any process stops all
            step = int(all_reduce(torch.tensor(step), op='max'))
        if step >= 0:
            raise ConfigError(f'the loss is not finite at epoch {epoch}, step {step + 1}'
                              f'/{self.steps_per_epoch}; the run stopped, its last good '
                              f'checkpoint is {self.args.model_dir}/last.pth if any. Lower '
                              '--lr, or look for bad labels (--check_data)')
        for value, n in zip(values, sizes, strict=True):
            self.logger.record_scalar('train/loss', value, n=n)
        return values[-1]


def holdable(pred, label):
    """Whether a training batch may wait (see Trainer.compute_metrics): it is small, and its
    target a tensor that torch.cat can join to others."""
    return pred.numel() <= HELD_ELEMENTS and torch.is_tensor(label)


def joinable(a, b):
    """Whether two (prediction, target) batches can be joined by torch.cat: the same shapes
    after the batch dimension, the same dtypes."""
    return all(x.shape[1:] == y.shape[1:] and x.dtype == y.dtype
               for x, y in zip(a, b, strict=True))


def main(argv=None):
    trainer = args = None
    try:
        args = prepare_train_args(argv)  # under torchrun, every process joins the group here
        try:
            trainer = Trainer(args)
        except (ConfigError, KeyboardInterrupt):
            # e.g. an unknown --monitor, or Ctrl-C: nothing ran, so leave no run folder (but
            # keep a resumed one)
            if not args.resume and is_main():
                remove_run_dir(args.model_dir)
            raise
        trainer.train()
    except (Exception, KeyboardInterrupt):
        close_distributed(trainer, wait=False)  # another process may be gone: do not wait
        raise
    finally:
        if trainer:
            close_loaders(trainer.train_loader, trainer.val_loader)
        temporary = args and args.fast_dev_run and TEMPORARY in args.checkpoints_dir
        if temporary and is_main():  # see options.apply_debug_flags
            shutil.rmtree(args.checkpoints_dir, ignore_errors=True)
            log.info(f'--fast_dev_run: its temporary folder {args.checkpoints_dir} is removed')
        close_distributed(trainer)
        release_folders()


if __name__ == '__main__':
    run_cli(main)
