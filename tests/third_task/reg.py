"""Regression: a batch is (images, one number each), the model gives one number per image.
tests/test_new_task.py copies this file to task/reg.py to add a third task."""
import os

import torch

from loss import select_loss
from metrics import MAEMetrics
from utils.viz import class_picture


class RegTask:
    # The flags that go with the task, used where the command line does not give them. The lists
    # only name the splits: BrightnessDataset makes its samples from --seed.
    defaults = {'model_type': 'reg_base', 'data_type': 'brightness', 'loss': 'mse',
                'train_list': os.path.join('brightness', 'train'),
                'val_list': os.path.join('brightness', 'val'),
                'class_names': ['brightness'], 'ignore_index': -100,
                'monitor': 'val/mae', 'monitor_mode': 'min'}

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.criterion = select_loss(args)
        self.memory_format = torch.channels_last if args.channels_last else torch.preserve_format

    def forward(self, model, data):
        """(input, prediction, target) of a batch as the dataset gives it: on the device, through
        the model. The Trainer and Evaluator call it under --amp's autocast."""
        img, value = data  # (B, 3, H, W) float in [0, 1], (B,) float
        img = img.to(self.device, non_blocking=True, memory_format=self.memory_format)
        value = value.to(self.device, non_blocking=True)
        pred = model(img)[:, 0]  # (B, 1) -> (B,)
        return img, pred, value

    def loss(self, pred, value):
        return self.criterion(pred.float(), value)

    def make_metrics(self):
        return MAEMetrics()

    def picture(self, img, pred, value):
        """One sample as an (H, W, 3) uint8 RGB picture: the input, captioned with the predicted
        and the true brightness."""
        img = (img.detach().float().cpu() * 255).round().byte().permute(1, 2, 0).numpy()
        return class_picture(img, f'{float(pred):.2f}', f'{float(value):.2f}')
