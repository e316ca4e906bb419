"""Evaluates a checkpoint on --val_list: writes result.txt (one `name: value` line per metric) and, with
--save_viz, input | prediction | ground truth pictures into the result folder beside the checkpoint.
Run: python eval.py [--load_model_path checkpoints/<run>/best.pth] [--save_viz]  (default: the newest run)"""
import logging
import os

import torch
from tqdm import tqdm

from data.augment import denormalize
from data.data_entry import select_eval_loader
from metrics import SegMetrics
from model.model_entry import equip_multi_gpu, select_model
from options import prepare_test_args
from utils.checkpoint import load_checkpoint, write_text
from utils.errors import ConfigError, run_cli
from utils.provenance import file_sha256, source_check
from utils.run_dir import remove_run_dir
from utils.torch_utils import get_device, load_model_weights, set_seed
from utils.viz import make_panel, save_image

log = logging.getLogger('torchbase')


class Evaluator:
    def __init__(self, args):
        self.args = args
        set_seed(args.seed, args.deterministic)
        self.device = get_device(args)
        model = select_model(args)
        load_model_weights(model, args.load_model_path, strict=not args.load_not_strict)
        self.model = equip_multi_gpu(model.to(self.device), args).eval()
        self.val_loader = select_eval_loader(args)
        self.metrics = SegMetrics(args.class_names, args.ignore_index)
        # Has the code that defines this model or its data changed since training? Said in the log and result.txt.
        self.provenance = source_check(load_checkpoint(args.load_model_path, mmap=True), args, args.load_model_path)
        if args.save_viz:
            os.makedirs(os.path.join(args.result_dir, 'viz'), exist_ok=True)

    @torch.no_grad()
    def eval(self):
        for i, data in enumerate(tqdm(self.val_loader, desc='eval', dynamic_ncols=True)):
            img, pred, gt = self.step(data)
            self.compute_metrics(pred, gt)
            if self.args.save_viz:
                self.viz_per_batch(img, pred, gt, i)
        scores = self.metrics.compute()
        lines = [f'{name}: {value:.4f}' for name, value in scores.items()]
        lines += [f'checkpoint: {self.args.load_model_path}',
                  f'checkpoint_sha256: {file_sha256(self.args.load_model_path)}',
                  f'eval_list: {self.args.val_list}', f'num_samples: {len(self.val_loader.dataset)}']
        lines += [f'{name}: {value}' for name, value in self.provenance.items()]
        write_text(os.path.join(self.args.result_dir, 'result.txt'), '\n'.join(lines) + '\n')
        log.info('\n'.join(lines))
        log.info(f'Results: {os.path.join(self.args.result_dir, "result.txt")}')
        return scores

    def step(self, data):
        # EDIT ME: unpack what your dataset returns, as in Trainer.step.
        img, gt = data  # (B, 3, H, W) float, (B, H, W) int64
        img = img.to(self.device, non_blocking=True)
        gt = gt.to(self.device, non_blocking=True)
        pred = self.model(img)  # (B, num_classes, H, W) logits
        return img, pred, gt

    def compute_metrics(self, pred, gt):
        self.metrics.update(pred, gt)

    def viz_per_batch(self, img, pred, gt, step):
        """Saves a picture for every sample whose index in the list is a multiple of --viz_freq, so the
        same samples are drawn whatever the batch size."""
        first = step * self.args.batch_size  # only the last batch can be smaller, so this is exact
        for j in range(img.shape[0]):
            if (first + j) % self.args.viz_freq == 0:
                panel = make_panel(denormalize(img[j]), pred[j].argmax(0).cpu().numpy(), gt[j].cpu().numpy(),
                                   self.args.ignore_index)
                save_image(os.path.join(self.args.result_dir, 'viz', f'{first + j:05d}.png'), panel)


def main(argv=None):
    args = prepare_test_args(argv)
    try:
        evaluator = Evaluator(args)
    except ConfigError:  # e.g. a checkpoint that does not fit: leave no result folder
        remove_run_dir(args.result_dir)
        raise
    return evaluator.eval()


if __name__ == '__main__':
    run_cli(main)
