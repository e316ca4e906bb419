"""Evaluates a checkpoint on the validation split of its data (--val_list, or --val_split):
writes result.txt (one `name: value` line per metric), metrics.csv, confusion.png and worst.txt
(utils/results.py) and, with --save_viz, the task's pictures into the result folder beside the
checkpoint.
Run: python eval.py [--load_model_path checkpoints/<run>/best.pth] [--save_viz]
(default: best.pth of the newest run)"""
import logging
import os
import signal
import sys

import torch
from tqdm import tqdm

from data.data_entry import close_loaders, select_eval_loader
from model.model_entry import equip_multi_gpu, load_trained
from options import chosen_classes, prepare_test_args
from task.task_entry import select_task
from utils.checkpoint import write_text
from utils.dist import all_gather, close_distributed, is_distributed, is_main
from utils.errors import ConfigError, run_cli
from utils.folder_lock import release_folders
from utils.logger import Recorder, metric_on, sum_over_processes
from utils.optim import amp_dtype, autocast
from utils.prepare import split_name
from utils.provenance import source_check
from utils.results import write_report
from utils.run_dir import remove_run_dir
from utils.torch_utils import get_device, set_seed
from utils.viz import save_image
from utils.weights import weights_key

log = logging.getLogger('torchbase')


class Evaluator:
    def __init__(self, args, ckpt):
        """ckpt: the checkpoint that prepare_test_args read from --load_model_path."""
        self.args = args
        set_seed(args.seed, args.deterministic)
        self.device = get_device(args)
        self.task = select_task(args, self.device)
        model, report = load_trained(args, ckpt, args.result_dir)
        model.to(self.device, memory_format=self.task.memory_format)
        # under torchrun each process evaluates its share of the list (data/sampler.py)
        self.model = (model if is_distributed() else equip_multi_gpu(model, args)).eval()
        self.amp_dtype = amp_dtype(args, self.device)  # the run's --amp unless given
        self.val_loader = select_eval_loader(args)
        self.metrics = metric_on(self.task.make_metrics(), self.device)
        # Has the code of this model or its data changed since training? Said in result.txt.
        # `weights: ema` when trained with --ema: those weights were validated and chose best.pth
        self.provenance = {'weights': weights_key(ckpt) or 'state dict',
                           **source_check(ckpt, args, chosen_classes(args))}
        if report:  # --load_not_strict: a score of a model that is partly untrained says so
            loaded = len(report['loaded'])
            own = loaded + len(report['missing']) + len(report['mismatched'])
            self.provenance['weights'] += (f' ({loaded} of the model\'s {own} tensors loaded: '
                                           'load_match_dict.json)')
        self.pictures = []  # under torchrun: those of this process, saved by rank 0 at the end
        self.scored = []  # (step, (B,) scores on the device) of a metric with per_sample
        if args.save_viz and is_main():
            os.makedirs(os.path.join(args.result_dir, 'viz'), exist_ok=True)

    @torch.no_grad()
    def eval(self):
        bar = tqdm(self.val_loader, desc='eval', dynamic_ncols=True, disable=not is_main())
        losses = Recorder()  # the mean loss per sample, as validation logs it
        for i, data in enumerate(bar):
            with autocast(self.device, self.amp_dtype):  # as in validation
                img, pred, gt = self.step(data)
                losses.record('loss', self.task.loss(pred, gt), n=img.shape[0])
            self.compute_metrics(pred, gt)
            self.score_samples(pred, gt, i)
            if self.args.save_viz:
                self.viz_per_batch(img, pred, gt, i)
        if self.args.save_viz:  # the other processes' pictures, to rank 0
            others = [p for pictures in all_gather(self.pictures)[1:] for p in pictures]
            if is_main():
                self.save_pictures(others)
        scored = [s for part in all_gather(self.sample_scores()) for s in part]
        scores = sum_over_processes(self.metrics).compute()
        losses.all_reduce()
        scores.update(losses.summary())
        if is_main():
            self.write_result(scores)
            write_report(self.args.result_dir, self.metrics, scores, scored)
        return scores

    def write_result(self, scores):
        args = self.args
        lines = [f'{name}: {value:.4f}' for name, value in scores.items()]
        # the sums the scores come from (the demos: the confusion matrix, rows = true class)
        lines += [f'{name}: {total.tolist()}' for name, total in self.metrics.sums.items()]
        lines += [f'checkpoint: {args.load_model_path}',
                  f'checkpoint_sha256: {args.checkpoint_sha256}',
                  f'task: {args.task}', f'model_type: {args.model_type}',
                  *([f'data_root: {args.data_root}'] if args.data_root else
                    [f'eval_list: {args.val_list}']),
                  f'eval_split: {split_name(chosen_classes(args)[1], args)}',
                  f'num_samples: {len(self.val_loader.dataset)}']
        lines += [f'{name}: {value}' for name, value in self.provenance.items()]
        path = os.path.join(args.result_dir, 'result.txt')
        write_text(path, '\n'.join(lines) + '\n')
        log.info('\n'.join(lines))
        log.info(f'Results: {path}')

    def step(self, data):
        """(input, prediction, target) of a batch, as in the Trainer: the task runs the model."""
        return self.task.forward(self.model, data)

    def compute_metrics(self, pred, gt):
        self.metrics.update(pred, gt)

    def score_samples(self, pred, gt, step):
        """Each sample's own score (the metric's per_sample, e.g. an image's mIoU), from the same
        predictions and kept on the device: read once, by sample_scores."""
        if hasattr(self.metrics, 'per_sample'):
            self.scored.append((step, self.metrics.per_sample(pred, gt)))

    def sample_scores(self):
        """[(image path, score)] of this process's samples (worst.txt lists the lowest)."""
        if not self.scored:
            return []
        batches = self.val_loader.batch_sampler.batches
        indices = [i for step, _ in self.scored for i in batches[step]]
        values = torch.cat([s for _, s in self.scored]).tolist()  # one wait for the device
        samples = getattr(self.val_loader.dataset, 'samples', None)  # [(image path, ...)]
        paths = [samples[i][0] if samples else f'sample {i}' for i in indices]
        return list(zip(paths, values, strict=True))

    def viz_per_batch(self, img, pred, gt, step):
        """Draws every sample whose index in the list is a multiple of --viz_freq, so the same
        samples are drawn whatever the batch size or number of processes."""
        # their indices in the list (under torchrun, a process sees every N-th sample)
        indices = self.val_loader.batch_sampler.batches[step]
        pictures = []
        for j, index in enumerate(indices):
            if index % self.args.viz_freq == 0:
                pictures.append((index, self.task.picture(img[j], pred[j], gt[j])))
        if is_main():
            self.save_pictures(pictures)
        else:
            self.pictures += pictures

    def save_pictures(self, pictures):
        for index, panel in pictures:
            save_image(os.path.join(self.args.result_dir, 'viz', f'{index:05d}.png'), panel)


def stop_at_once(signum, frame):
    """SIGTERM: an evaluation has nothing to save, so it stops at once, and main removes its
    result folder."""
    print(
        f'{signal.Signals(signum).name}: evaluation stopped; a result cut short is no result',
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


def main(argv=None):
    evaluator = args = None
    previous = signal.signal(signal.SIGTERM, stop_at_once)
    try:
        args, ckpt = prepare_test_args(argv)  # under torchrun, every process joins the group here
        try:
            evaluator = Evaluator(args, ckpt)
            return evaluator.eval()
        except (ConfigError, KeyboardInterrupt, SystemExit) as e:
            # a checkpoint that does not fit, or an evaluation stopped midway: leave no result
            # folder (one that failed on a bad sample keeps its eval.log, which says why)
            if is_main() and (evaluator is None or not isinstance(e, ConfigError)):
                remove_run_dir(args.result_dir)
            raise
    except (Exception, KeyboardInterrupt, SystemExit):
        close_distributed(wait=False)  # another process may be gone: do not wait for it
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if evaluator:
            close_loaders(evaluator.val_loader)
        close_distributed()
        release_folders()


if __name__ == '__main__':
    run_cli(main)
