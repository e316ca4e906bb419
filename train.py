"""Trains the model chosen by --model_type on --train_list and validates it on --val_list after each epoch.
Run: python train.py [flags]   (python train.py -h lists them; with no flags it trains the demo task)
A new task usually edits only step, compute_loss, compute_metrics and gen_imgs_to_write."""
import logging
import shutil
import time
from contextlib import nullcontext

import torch
from tqdm import tqdm

from data.augment import denormalize
from data.data_entry import close_loaders, select_eval_loader, select_train_loader
from loss import select_loss
from metrics import SegMetrics
from model.model_entry import equip_multi_gpu, select_model
from options import TEMPORARY, prepare_train_args
from utils.checks import check_monitor
from utils.dist import all_reduce, broadcast_buffers, close_distributed, is_distributed, is_main
from utils.errors import ConfigError, run_cli
from utils.folder_lock import release_folders
from utils.logger import Logger
from utils.optim import LRSchedule, ModelEMA, amp_dtype, autocast, build_optimizer, improved
from utils.profile import make_profiler
from utils.provenance import provenance
from utils.resume import load_last
from utils.run_dir import remove_run_dir
from utils.run_status import RunStatus
from utils.stop import StopSignals
from utils.torch_utils import get_device, load_model_weights, set_seed, write_model_summary
from utils.trainer_state import checkpoint_state, load_resume_state
from utils.viz import make_panel

log = logging.getLogger('torchbase')


class Trainer:
    def __init__(self, args):
        self.args = args
        set_seed(args.seed, args.deterministic)
        torch.autograd.set_detect_anomaly(args.detect_anomaly)  # names the forward op behind a NaN gradient; slow
        self.device = get_device(args)
        self.train_loader, self.val_loader = select_train_loader(args), select_eval_loader(args)
        self.steps_per_epoch = len(self.train_loader)
        self.raw_model = select_model(args)  # unwrapped: what checkpoints hold, with no `module.` prefix
        # The ways to start: fresh (as built), a strict or partial (load_match_dict) load of --load_model_path,
        # or --resume from the run's last.pth; a resumed run that had written none starts afresh.
        ckpt = load_last(args.resume) if args.resume else None
        if args.load_model_path and not ckpt:
            load_model_weights(self.raw_model, args.load_model_path, not args.load_not_strict, args.model_dir)
        self.memory_format = torch.channels_last if args.channels_last else torch.preserve_format
        self.raw_model.to(self.device, memory_format=self.memory_format)
        write_model_summary(self.raw_model, args.model_dir)
        self.ema = ModelEMA(self.raw_model, args.ema) if args.ema else None
        self.model = equip_multi_gpu(torch.compile(self.raw_model) if args.compile else self.raw_model, args)
        self.eval_model = self.ema.module if self.ema else self.model  # what is validated and decides best.pth
        self.optimizer = build_optimizer(self.raw_model, args)
        self.schedule = LRSchedule(self.optimizer, args, self.steps_per_epoch)
        self.amp_dtype = amp_dtype(args, self.device)  # None without --amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.criterion = select_loss(args)
        self.metrics = {phase: SegMetrics(args.class_names, args.ignore_index) for phase in ('train', 'val')}
        self.best_metric, self.best_epoch = None, None
        self.start_epoch, self.start_step = 1, 0  # where train() begins: later when resuming
        self.bad_loss_step = torch.tensor(-1, device=self.device)  # first step with a non-finite loss, on the device
        check_monitor(args.monitor, self.metrics['val'])
        self.provenance = provenance(args)  # commit and source hashes, carried by every checkpoint
        # purge_step: curves that a killed predecessor wrote after its last.pth are dropped
        self.logger = Logger(args, purge_step=ckpt['epoch'] + 1 if ckpt else 1 if args.resume else None)
        if ckpt:
            load_resume_state(self, ckpt)
        elif args.resume:
            log.info('The run stopped before its first checkpoint: training it again from epoch 1')
        self.status = RunStatus(args)
        self.stop = StopSignals()
        self.profiler = make_profiler(args, self.steps_per_epoch)

    def train(self):
        """Epochs start_epoch..--epochs. SIGTERM or Ctrl-C: saves a resumable last.pth, exits with 128 + signal."""
        try:
            with self.stop, self.status.tracking(), self.profiler:  # signals held until status.json says how it ended
                for epoch in range(self.start_epoch, self.args.epochs + 1):
                    done = self.train_per_epoch(epoch, self.start_step if epoch == self.start_epoch else 0)
                    if done < self.steps_per_epoch:  # stopped mid-epoch; a stop in validation waits for its end
                        self.logger.save_resume_point(checkpoint_state(self, epoch - 1, done, {}))
                        self.stop.exit(self.status, f'at epoch {epoch}, step {done}/{self.steps_per_epoch}')
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
        """Trains one epoch, or its batches after the first `skip` when resuming; returns the steps done."""
        self.model.train()
        self.epoch_start = time.time()
        self.train_loader.sampler.set_epoch(epoch, skip * self.args.batch_size)  # the order is (seed, epoch)'s
        # The loader draws its workers' seeds from this generator as an epoch's iteration starts (with persistent
        # workers, the first epoch's only). A checkpoint saved mid-epoch keeps the state from before that draw.
        self.loader_state = self.train_loader.generator.get_state()
        bar = tqdm(self.train_loader, desc=f'train {epoch}/{self.args.epochs}', leave=False, dynamic_ncols=True,
                   initial=skip, total=self.steps_per_epoch, disable=not is_main())
        for i, data in enumerate(bar, start=skip):
            with autocast(self.device, self.amp_dtype):
                img, pred, label = self.step(data, self.model)
                loss = self.compute_loss(pred, label)
            self.optimize(loss, epoch, i)
            self.compute_metrics(pred, label, is_train=True)
            self.logger.record_scalar('train/loss', loss, n=img.shape[0])
            # a flag on the device, read only at the checks below: no wait for the GPU at every step
            self.bad_loss_step = torch.where((self.bad_loss_step < 0) & ~loss.isfinite(), i, self.bad_loss_step)
            self.profiler.step()
            if i % self.args.print_freq == 0:
                bar.set_postfix(loss=f'{self.check_loss(epoch, loss):.4f}')
                self.status.beat()
            # before asking the loader for another batch (under torchrun, the processes agree every print_freq
            # steps); only after an update: the gradients summed so far by --accum_steps are not saved
            stop = self.stop.agreed(i + 1, self.args.print_freq)
            if stop and (i + 1) % self.args.accum_steps == 0 and i + 1 < self.steps_per_epoch:
                self.check_loss(epoch)
                return i + 1
        self.check_loss(epoch)
        self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=True), epoch)
        self.logger.record_metrics('train', self.metrics['train'])
        return self.steps_per_epoch

    @torch.no_grad()
    def val_per_epoch(self, epoch):
        """Validates the model, or its EMA with --ema."""
        self.eval_model.eval()
        # under torchrun: every process validates rank 0's model, the one saved
        broadcast_buffers(self.ema.module if self.ema else self.raw_model)
        for i, data in enumerate(tqdm(self.val_loader, desc=f'val {epoch}', leave=False, dynamic_ncols=True,
                                      disable=not is_main())):
            with autocast(self.device, self.amp_dtype):
                img, pred, label = self.step(data, self.eval_model)
                self.logger.record_scalar('val/loss', self.compute_loss(pred, label), n=img.shape[0])
            self.compute_metrics(pred, label, is_train=False)
            if i == 0:  # the same validation images every epoch, so the pictures show the progress
                self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=False), epoch)
            if i % self.args.print_freq == 0:
                self.status.beat()
        self.logger.record_metrics('val', self.metrics['val'])

    def step(self, data, model):
        # EDIT ME: unpack what your dataset returns; keep returning (input, prediction, target).
        img, label = data  # (B, 3, H, W) float, (B, H, W) int64
        img = img.to(self.device, non_blocking=True, memory_format=self.memory_format)
        label = label.to(self.device, non_blocking=True)
        pred = model(img)  # (B, num_classes, H, W) logits
        return img, pred, label

    def compute_loss(self, pred, gt):
        return self.criterion(pred, gt)

    def optimize(self, loss, epoch, i):
        """Backward at every step; an update every --accum_steps steps and at the epoch's end: the loss is divided by
        the steps of its window, so the gradient is their mean. Then --clip_grad, the step and --ema."""
        start = i - i % self.args.accum_steps
        window = min(self.args.accum_steps, self.steps_per_epoch - start)  # steps in this update (fewer at the end)
        update = i + 1 == start + window
        with nullcontext() if update or not is_distributed() else self.model.no_sync():  # DDP: no all-reduce yet
            self.scaler.scale(loss / window if window > 1 else loss).backward()  # scale: float16's GradScaler
        if not update:
            return
        if self.args.clip_grad:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.args.clip_grad)
        self.schedule.set_lr(epoch, i)
        self.scaler.step(self.optimizer)  # skipped, with float16, when the gradients hold an inf or nan
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema:
            self.ema.update(self.raw_model)

    def compute_metrics(self, pred, gt, is_train):
        self.metrics['train' if is_train else 'val'].update(pred.detach(), gt)

    def gen_imgs_to_write(self, img, pred, label, is_train):
        """{tag: picture} for TensorBoard: the batch's first sample as input | prediction | ground truth."""
        # EDIT ME: draw what shows your task's progress, as (H, W, 3) uint8 RGB pictures.
        panel = make_panel(denormalize(img[0]), pred[0].argmax(0).cpu().numpy(), label[0].cpu().numpy(),
                           self.args.ignore_index)
        return {f'{"train" if is_train else "val"}/viz': panel}

    def end_epoch(self, epoch):
        """Curves, checkpoints and status after epoch `epoch`; returns True when --early_stop ends the run."""
        self.logger.record_scalar('train/lr', self.optimizer.param_groups[0]['lr'])  # that of the last update
        scalars = self.logger.save_curves(epoch)
        value = scalars[self.args.monitor]
        is_best = improved(value, self.best_metric, self.args.monitor_mode)
        self.best_metric, self.best_epoch = (value, epoch) if is_best else (self.best_metric, self.best_epoch)
        self.schedule.end_epoch(value)
        stop = self.args.early_stop and epoch - self.best_epoch >= self.args.early_stop and epoch < self.args.epochs
        self.logger.save_check_point(checkpoint_state(self, epoch, 0, scalars), epoch, is_best, final=stop)
        self.status.update(epochs_done=epoch, best_metric=self.best_metric, best_epoch=self.best_epoch)
        shown = ' '.join(f'{k} {scalars[k]:.4f}' for k in ('train/loss', 'val/loss', 'val/mIoU') if k in scalars)
        log.info(f'epoch {epoch}/{self.args.epochs} {shown} lr {scalars["train/lr"]:.3g} | best {self.args.monitor} '
                 f'{self.best_metric:.4f} (epoch {self.best_epoch}) | {time.time() - self.epoch_start:.1f}s')
        if stop:
            self.status.update(message=f'early stop after epoch {epoch}: {self.args.monitor} has not improved for '
                                       f'{self.args.early_stop} epochs; best.pth is epoch {self.best_epoch}')
            log.info(self.status.fields['message'])
        return bool(stop)

    def check_loss(self, epoch, loss=None):
        """Stops the run at a non-finite loss, before a checkpoint can save the weights it spoilt; returns `loss` as a
        number. One wait for the device (.tolist()): called only every --print_freq steps and at the epoch's end."""
        bad = all_reduce(self.bad_loss_step, op='max').float()  # under torchrun: a NaN in any process stops all
        step, value = torch.stack([bad, bad if loss is None else loss.detach().float()]).tolist()
        if step >= 0:
            raise ConfigError(f'the loss is not finite at epoch {epoch}, step {int(step) + 1}/{self.steps_per_epoch}; '
                              f'the run stopped, its last good checkpoint is {self.args.model_dir}/last.pth if any. '
                              'Lower --lr, or look for bad labels (--check_data)')
        return value

    def stateful(self):
        """What checkpoints hold besides the model, by state_dict(); only last.pth has all (Logger.RESUME_ONLY)."""
        parts = {'optimizer': self.optimizer, 'schedule': self.schedule, 'scaler': self.scaler, 'ema': self.ema}
        return {k: v for k, v in parts.items() if v is not None}


def main(argv=None):
    trainer = args = None
    try:
        args = prepare_train_args(argv)  # under torchrun, every process joins the group here
        try:
            trainer = Trainer(args)
        except (ConfigError, KeyboardInterrupt):  # e.g. an unknown --monitor, or Ctrl-C: nothing ran, so leave no
            # run folder (but keep a resumed one)
            if not args.resume and is_main():
                remove_run_dir(args.model_dir)
            raise
        trainer.train()
    except (Exception, KeyboardInterrupt):
        close_distributed(trainer, wait=False)  # another process may be gone: do not wait for it
        raise
    finally:
        if trainer:
            close_loaders(trainer.train_loader, trainer.val_loader)
        if args and args.fast_dev_run and is_main() and TEMPORARY in args.checkpoints_dir:  # see apply_debug_flags
            shutil.rmtree(args.checkpoints_dir, ignore_errors=True)
            log.info(f'--fast_dev_run: its temporary folder {args.checkpoints_dir} is removed')
        close_distributed(trainer)
        release_folders()


if __name__ == '__main__':
    run_cli(main)
