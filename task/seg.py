"""Semantic segmentation: a batch is (images, label maps), the model gives a class score per pixel.
EDIT ME (copy this file for a new task): its defaults, forward, loss, metrics and picture."""
import os

import torch

from data.augment import denormalize
from data.data_entry import type2data
from data.make_shapes import CLASS_NAMES, DEMO_DIR
from loss import select_loss
from metrics import SegMetrics
from utils.viz import make_panel


class SegTask:
    # The flags that go with the task, used where the command line does not give them.
    defaults = {'model_type': 'base', 'data_type': 'list', 'loss': 'ce',
                'train_list': os.path.join(DEMO_DIR, 'train.txt'),
                'val_list': os.path.join(DEMO_DIR, 'val.txt'),
                'class_names': list(CLASS_NAMES), 'ignore_index': 255,
                'monitor': 'val/mIoU', 'monitor_mode': 'max'}

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.criterion = select_loss(args)
        # NHWC with --channels_last: faster convolutions under --amp on recent GPUs
        self.memory_format = torch.channels_last if args.channels_last else torch.preserve_format
        # the dataset's class colours (VOC's, Cityscapes'), if it has them; else viz's own
        self.palette = getattr(type2data.get(args.data_type), 'palette', None)

    def forward(self, model, data):
        """(input, prediction, target) of a batch as the dataset gives it: on the device, through
        the model. The Trainer and Evaluator call it under --amp's autocast."""
        img, label = data  # (B, 3, H, W) float, (B, H, W) int64
        img = img.to(self.device, non_blocking=True, memory_format=self.memory_format)
        label = label.to(self.device, non_blocking=True)
        pred = model(img)  # (B, num_classes, H, W) logits
        return img, pred, label

    def loss(self, pred, label):
        return self.criterion(pred, label)

    def make_metrics(self):
        return SegMetrics(self.args.class_names, self.args.ignore_index)

    def picture(self, img, pred, label):
        """One sample as an (H, W, 3) uint8 RGB picture: input | prediction | truth."""
        return make_panel(denormalize(img), pred.argmax(0).cpu().numpy(), label.cpu().numpy(),
                          self.args.ignore_index, self.palette)
