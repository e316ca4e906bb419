"""Trains the model chosen by --model_type on --train_list and validates it on --val_list after each epoch.
Run: python train.py [flags]   (python train.py -h lists them; with no flags it trains the demo task)
A new task usually edits only step, compute_loss, compute_metrics and gen_imgs_to_write."""
import logging
import time

import torch
from tqdm import tqdm

from data.augment import denormalize
from data.data_entry import select_eval_loader, select_train_loader
from loss import select_loss
from metrics import SegMetrics
from model.model_entry import equip_multi_gpu, select_model
from options import prepare_train_args
from utils.errors import ConfigError, run_cli
from utils.logger import Logger
from utils.run_dir import remove_run_dir
from utils.torch_utils import get_device, load_model_weights, set_seed
from utils.viz import make_panel

log = logging.getLogger('torchbase')


class Trainer:
    def __init__(self, args):
        self.args = args
        set_seed(args.seed)
        self.device = get_device(args)
        self.train_loader = select_train_loader(args)
        self.val_loader = select_eval_loader(args)
        # The three ways to start: fresh (as built), strict load, or partial load (load_match_dict).
        self.raw_model = select_model(args)  # unwrapped: what checkpoints hold, with no `module.` prefix
        if args.load_model_path:
            load_model_weights(self.raw_model, args.load_model_path, strict=not args.load_not_strict)
        self.model = equip_multi_gpu(self.raw_model.to(self.device), args)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, betas=(args.momentum, args.beta),
                                          weight_decay=args.weight_decay)
        self.criterion = select_loss(args)
        self.metrics = {phase: SegMetrics(args.class_names, args.ignore_index) for phase in ('train', 'val')}
        self.best_metric = None
        self.check_monitor()
        self.logger = Logger(args)  # last: once it exists, the run has started

    def check_monitor(self):
        known = ['val/loss'] + [f'val/{name}' for name in self.metrics['val'].compute()]
        if self.args.monitor not in known:
            raise ConfigError(f'--monitor {self.args.monitor!r} is not recorded; choose one of {", ".join(known)}')

    def train(self):
        for epoch in range(1, self.args.epochs + 1):
            start = time.time()
            self.train_per_epoch(epoch)
            self.val_per_epoch(epoch)
            self.logger.record_scalar('train/lr', self.optimizer.param_groups[0]['lr'])
            scalars = self.logger.save_curves(epoch)
            is_best = self.update_best(scalars[self.args.monitor])
            self.logger.save_check_point(self.checkpoint_state(epoch, scalars), epoch, is_best)
            shown = ' '.join(f'{k} {scalars[k]:.4f}' for k in ('train/loss', 'val/loss', 'val/mIoU') if k in scalars)
            log.info(f'epoch {epoch}/{self.args.epochs} {shown} | best {self.args.monitor} {self.best_metric:.4f} '
                     f'| {time.time() - start:.1f}s')
        self.logger.close()
        log.info(f'Done. Checkpoints and curves: {self.args.model_dir} '
                 f'(tensorboard --logdir {self.args.checkpoints_dir})')

    def train_per_epoch(self, epoch):
        self.model.train()
        if hasattr(self.train_loader.dataset, 'set_epoch'):  # augmentation that depends on the epoch
            self.train_loader.dataset.set_epoch(epoch)
        bar = tqdm(self.train_loader, desc=f'train {epoch}/{self.args.epochs}', leave=False, dynamic_ncols=True)
        for i, data in enumerate(bar):
            img, pred, label = self.step(data)
            loss = self.compute_loss(pred, label)
            self.optimize(loss)
            self.compute_metrics(pred, label, is_train=True)
            self.logger.record_scalar('train/loss', loss, n=img.shape[0])
            if i % self.args.print_freq == 0:
                bar.set_postfix(loss=f'{loss.item():.4f}')  # .item() waits for the device: only every print_freq
        self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=True), epoch)
        self.record_metrics('train')

    @torch.no_grad()
    def val_per_epoch(self, epoch):
        self.model.eval()
        for i, data in enumerate(tqdm(self.val_loader, desc=f'val {epoch}', leave=False, dynamic_ncols=True)):
            img, pred, label = self.step(data)
            self.logger.record_scalar('val/loss', self.compute_loss(pred, label), n=img.shape[0])
            self.compute_metrics(pred, label, is_train=False)
            if i == 0:  # the same validation images every epoch, so the pictures show the progress
                self.logger.save_imgs(self.gen_imgs_to_write(img, pred, label, is_train=False), epoch)
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
        """Records the metrics of the whole epoch (one confusion matrix, not a mean of batches)."""
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

    def checkpoint_state(self, epoch, scalars):
        """Only tensors and plain Python values, so the file loads with torch.load(weights_only=True)."""
        return {'model': self.raw_model.state_dict(), 'optimizer': self.optimizer.state_dict(), 'epoch': epoch,
                'args': dict(vars(self.args)), 'metrics': scalars, 'best_metric': self.best_metric}


def main(argv=None):
    args = prepare_train_args(argv)
    try:
        trainer = Trainer(args)
    except ConfigError:  # a bad list, checkpoint or --monitor: nothing ran, so leave no run folder
        remove_run_dir(args.model_dir)
        raise
    trainer.train()


if __name__ == '__main__':
    run_cli(main)
