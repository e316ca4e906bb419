"""Trains the model chosen by --model_type on --train_list and validates it on --val_list after each epoch.
Run: python train.py [flags]   (python train.py -h lists them; with no flags it trains the demo task)
A new task usually edits only step, compute_loss, compute_metrics and gen_imgs_to_write."""
import logging
import os
import signal
import time

import torch
from tqdm import tqdm

from data.augment import denormalize
from data.data_entry import select_eval_loader, select_train_loader
from loss import select_loss
from metrics import SegMetrics
from model.model_entry import equip_multi_gpu, select_model
from options import prepare_train_args
from utils.checkpoint import load_checkpoint
from utils.dist import all_gather, all_reduce, broadcast_buffers, close_distributed, is_main, world_size
from utils.errors import ConfigError, run_cli
from utils.logger import Logger
from utils.provenance import provenance
from utils.resume import own, resume_position, rng_state, set_rng_state
from utils.run_dir import remove_run_dir
from utils.run_status import RunStatus
from utils.stop import StopSignals
from utils.torch_utils import get_device, load_model_weights, set_seed
from utils.viz import make_panel

log = logging.getLogger('torchbase')


class Trainer:
    def __init__(self, args):
        self.args = args
        set_seed(args.seed, args.deterministic)
        self.device = get_device(args)
        self.train_loader = select_train_loader(args)
        self.val_loader = select_eval_loader(args)
        self.steps_per_epoch = len(self.train_loader)
        self.raw_model = select_model(args)  # unwrapped: what checkpoints hold, with no `module.` prefix
        # The ways to start: fresh (as built), a strict or partial (load_match_dict) load of --load_model_path,
        # or --resume from the run's last.pth; a resumed run that had written none starts afresh.
        last = os.path.join(args.resume, 'last.pth') if args.resume else ''
        ckpt = load_checkpoint(last) if os.path.isfile(last) else None
        if args.load_model_path and not ckpt:
            load_model_weights(self.raw_model, args.load_model_path, not args.load_not_strict, args.model_dir)
        self.model = equip_multi_gpu(self.raw_model.to(self.device), args)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, betas=(args.momentum, args.beta),
                                          weight_decay=args.weight_decay)
        self.criterion = select_loss(args)
        self.metrics = {phase: SegMetrics(args.class_names, args.ignore_index) for phase in ('train', 'val')}
        self.best_metric, self.best_epoch = None, None
        self.start_epoch, self.start_step = 1, 0  # where train() begins: later when resuming
        self.bad_loss_step = torch.tensor(-1, device=self.device)  # first step with a non-finite loss, on the device
        self.check_monitor()
        self.provenance = provenance(args)  # commit and source hashes, carried by every checkpoint
        # purge_step: curves that a killed predecessor wrote after its last.pth are dropped
        self.logger = Logger(args, purge_step=ckpt['epoch'] + 1 if ckpt else 1 if args.resume else None)
        if ckpt:
            self.load_resume_state(ckpt)
        elif args.resume:
            log.info('The run stopped before its first checkpoint: training it again from epoch 1')
        self.status = RunStatus(args)
        self.stop = StopSignals()

    def check_monitor(self):
        known = ['val/loss'] + [f'val/{name}' for name in self.metrics['val'].compute()]
        if self.args.monitor not in known:
            raise ConfigError(f'--monitor {self.args.monitor!r} is not recorded; choose one of {", ".join(known)}')

    def train(self):
        """Epochs start_epoch..--epochs. SIGTERM or Ctrl-C: saves a resumable last.pth, exits with 128 + signal."""
        try:
            with self.status.tracking(), self.stop:  # status.json: running, then finished, stopped or failed
                for epoch in range(self.start_epoch, self.args.epochs + 1):
                    done = self.train_per_epoch(epoch, self.start_step if epoch == self.start_epoch else 0)
                    if done < self.steps_per_epoch:  # stopped mid-epoch; a stop in validation waits for its end
                        self.logger.save_resume_point(self.checkpoint_state(epoch - 1, done, {}))
                        self.exit_stopped(epoch, done)
                    self.val_per_epoch(epoch)
                    self.end_epoch(epoch)
                    if self.stop.agreed() and epoch < self.args.epochs:
                        self.exit_stopped(epoch, self.steps_per_epoch)
        finally:
            self.logger.close()
        log.info(f'Done. Checkpoints and curves: {self.args.model_dir} '
                 f'(tensorboard --logdir {self.args.checkpoints_dir})')

    def train_per_epoch(self, epoch, skip=0):
        """Trains one epoch, or its batches after the first `skip` when resuming; returns the steps done."""
        self.model.train()
        self.epoch_start = time.time()
        self.train_loader.sampler.set_epoch(epoch, skip * self.args.batch_size)  # the order is (seed, epoch)'s
        # The loader draws its workers' seeds from this generator when the epoch's iteration starts: a checkpoint
        # saved mid-epoch stores the state from before that draw, so the resumed epoch draws the same seeds.
        self.loader_state = self.train_loader.generator.get_state()
        bar = tqdm(self.train_loader, desc=f'train {epoch}/{self.args.epochs}', leave=False, dynamic_ncols=True,
                   initial=skip, total=self.steps_per_epoch, disable=not is_main())
        for i, data in enumerate(bar, start=skip):
            img, pred, label = self.step(data)
            loss = self.compute_loss(pred, label)
            self.optimize(loss)
            self.compute_metrics(pred, label, is_train=True)
            self.logger.record_scalar('train/loss', loss, n=img.shape[0])
            # a flag on the device, read only at the checks below: no wait for the GPU at every step
            self.bad_loss_step = torch.where((self.bad_loss_step < 0) & ~loss.isfinite(), i, self.bad_loss_step)
            if i % self.args.print_freq == 0:
                bar.set_postfix(loss=f'{loss.item():.4f}')  # .item() waits for the device: only every print_freq
                self.check_loss(epoch)
                self.status.beat()
            # before asking the loader for another batch (under torchrun, the processes agree every print_freq steps)
            if self.stop.agreed(i + 1, self.args.print_freq) and i + 1 < self.steps_per_epoch:
                self.check_loss(epoch)
                return i + 1
        self.check_loss(epoch)
        self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=True), epoch)
        self.record_metrics('train')
        return self.steps_per_epoch

    @torch.no_grad()
    def val_per_epoch(self, epoch):
        self.model.eval()
        broadcast_buffers(self.raw_model)  # under torchrun: every process validates rank 0's model, the one saved
        for i, data in enumerate(tqdm(self.val_loader, desc=f'val {epoch}', leave=False, dynamic_ncols=True,
                                      disable=not is_main())):
            img, pred, label = self.step(data)
            self.logger.record_scalar('val/loss', self.compute_loss(pred, label), n=img.shape[0])
            self.compute_metrics(pred, label, is_train=False)
            if i == 0:  # the same validation images every epoch, so the pictures show the progress
                self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=False), epoch)
            if i % self.args.print_freq == 0:
                self.status.beat()
        self.record_metrics('val')

    def step(self, data):
        # EDIT ME: unpack what your dataset returns; keep returning (input, prediction, target).
        img, label = data  # (B, 3, H, W) float, (B, H, W) int64
        img = img.to(self.device, non_blocking=True)
        label = label.to(self.device, non_blocking=True)
        pred = self.model(img)  # (B, num_classes, H, W) logits
        return img, pred, label

    def compute_loss(self, pred, gt):
        return self.criterion(pred, gt)

    def optimize(self, loss):
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def compute_metrics(self, pred, gt, is_train):
        self.metrics['train' if is_train else 'val'].update(pred.detach(), gt)

    def record_metrics(self, phase):
        """Records the metrics of the whole epoch (one confusion matrix, not a mean of batches; under torchrun,
        that of all the processes)."""
        self.metrics[phase].sync()
        for name, value in self.metrics[phase].compute().items():
            self.logger.record_scalar(f'{phase}/{name}', value)
        self.metrics[phase].reset()

    def gen_imgs_to_write(self, img, pred, label, is_train):
        """{tag: picture} for TensorBoard: the batch's first sample as input | prediction | ground truth."""
        # EDIT ME: draw what shows your task's progress, as (H, W, 3) uint8 RGB pictures.
        panel = make_panel(denormalize(img[0]), pred[0].argmax(0).cpu().numpy(), label[0].cpu().numpy(),
                           self.args.ignore_index)
        return {f'{"train" if is_train else "val"}/viz': panel}

    def update_best(self, value):
        best = self.best_metric
        improved = best is None or (value > best if self.args.monitor_mode == 'max' else value < best)
        if improved:
            self.best_metric = value
        return improved

    def end_epoch(self, epoch):
        self.logger.record_scalar('train/lr', self.optimizer.param_groups[0]['lr'])
        scalars = self.logger.save_curves(epoch)
        is_best = self.update_best(scalars[self.args.monitor])
        self.best_epoch = epoch if is_best else self.best_epoch
        self.logger.save_check_point(self.checkpoint_state(epoch, 0, scalars), epoch, is_best)
        self.status.update(epochs_done=epoch, best_metric=self.best_metric, best_epoch=self.best_epoch)
        shown = ' '.join(f'{k} {scalars[k]:.4f}' for k in ('train/loss', 'val/loss', 'val/mIoU') if k in scalars)
        log.info(f'epoch {epoch}/{self.args.epochs} {shown} | best {self.args.monitor} {self.best_metric:.4f} '
                 f'(epoch {self.best_epoch}) | {time.time() - self.epoch_start:.1f}s')

    def check_loss(self, epoch):
        """Stops the run at a non-finite loss, before a checkpoint can save the weights it spoilt."""
        step = int(all_reduce(self.bad_loss_step, op='max'))  # under torchrun: a NaN in any process stops all
        if step >= 0:
            raise ConfigError(f'the loss is not finite at epoch {epoch}, step {step + 1}/{self.steps_per_epoch}; '
                              f'the run stopped, its last good checkpoint is {self.args.model_dir}/last.pth if any. '
                              'Lower --lr, or look for bad labels (--check_data)')

    def exit_stopped(self, epoch, step):
        """After a stop signal: says how to resume and exits with 128 + the signal number, as the shell does."""
        where = f'after epoch {epoch}' if step == self.steps_per_epoch else \
            f'at epoch {epoch}, step {step}/{self.steps_per_epoch}'
        self.status.stopped(f'by {signal.Signals(self.stop.received).name} {where}; last.pth saved')
        raise SystemExit(128 + self.stop.received)

    def checkpoint_state(self, epoch, step, scalars):
        """Everything to rebuild the model and to resume exactly: `epoch` epochs done, plus `step` steps of the
        next (with the partial sums of its training metrics). Only tensors and plain Python values, so the
        file loads with torch.load(weights_only=True)."""
        state = {'model': self.raw_model.state_dict(), 'optimizer': self.optimizer.state_dict(), 'epoch': epoch,
                 'step': step, 'args': dict(vars(self.args)), 'metrics': scalars, 'best_metric': self.best_metric,
                 'best_epoch': self.best_epoch, **self.provenance, 'world_size': world_size(),  # each process's:
                 'rng': all_gather(rng_state(self.loader_state if step else self.train_loader.generator.get_state()))}
        if step:  # each process's partial sums, like its RNG states
            sums = {k: v.cpu() if torch.is_tensor(v) else v for k, v in self.logger.recorder.sums.items()}
            state['partial'] = all_gather({'sums': sums, 'counts': self.logger.recorder.counts,
                                           'confusion': self.metrics['train'].cm.cpu()})
        return state

    def load_resume_state(self, ckpt):
        self.raw_model.load_state_dict(ckpt['model'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.best_metric, self.best_epoch = ckpt['best_metric'], ckpt['best_epoch']
        self.start_epoch, self.start_step, index = resume_position(ckpt, self.args.epochs)
        if self.start_step:  # index: this process's place in the per-process lists
            partial = own(ckpt['partial'], index)
            self.logger.recorder.sums, self.logger.recorder.counts = partial['sums'], partial['counts']
            self.metrics['train'].cm = partial['confusion'].to(self.device)
        # last: nothing may draw a random number between here and the first step
        set_rng_state(own(ckpt['rng'], index), self.train_loader.generator)
        log.info(f'Resumed at epoch {self.start_epoch}, step {self.start_step}/{self.steps_per_epoch}')


def main(argv=None):
    trainer = None
    try:
        args = prepare_train_args(argv)  # under torchrun, every process joins the group here
        try:
            trainer = Trainer(args)
        except ConfigError:  # e.g. an unknown --monitor: nothing ran, so leave no run folder (but keep a resumed one)
            if not args.resume and is_main():
                remove_run_dir(args.model_dir)
            raise
        trainer.train()
    except (Exception, KeyboardInterrupt):
        close_distributed(trainer, wait=False)  # another process may be gone: do not wait for it
        raise
    finally:
        close_distributed(trainer)


if __name__ == '__main__':
    run_cli(main)
