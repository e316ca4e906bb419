"""Semantic segmentation: a batch is (images, label maps), the model gives a class score per pixel.
EDIT ME (copy this file for a new task): its defaults, forward and infer, loss, metrics, pictures
and the predictions that predict.py saves."""
import os

import numpy as np
import torch
from PIL import Image

from data.augment import denormalize
from data.data_entry import type2data
from data.make_shapes import CLASS_NAMES, DEMO_DIR
from loss import select_loss
from metrics import SegMetrics
from utils.input_size import padded_forward
from utils.viz import PALETTE, colorize, make_panel, overlay


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
        known = len(PALETTE if self.palette is None else self.palette)
        # predict.py's PNG palette: those colours, and the pictures' own for classes past them
        self.png_palette = colorize(np.arange(max(args.num_classes, known)), -1, self.palette)

    def forward(self, model, data):
        """(input, prediction, target) of a batch as the dataset gives it: on the device, through
        the model. The Trainer and Evaluator call it under --amp's autocast."""
        img, label = data  # (B, 3, H, W) float, (B, H, W) int64
        img, pred = self.infer(model, img)  # (B, num_classes, H, W) logits
        return img, pred, label.to(self.device, non_blocking=True)

    def infer(self, model, img):
        """(input on the device, logits) of a batch of normalized images: the one place the model
        runs, for training, eval.py and predict.py alike. Padded up to the model's input_multiple
        and the logits cut back to the image's size (utils/input_size.py)."""
        img = img.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return img, padded_forward(model, img, crop=True)  # (B, 3, H, W), (B, num_classes, H, W)

    def loss(self, pred, label):
        return self.criterion(pred, label)

    def make_metrics(self):
        return SegMetrics(self.args.class_names, self.args.ignore_index)

    def picture(self, img, pred, label):
        """One sample as an (H, W, 3) uint8 RGB picture: input | prediction | truth, titled, above a
        legend of the classes in them."""
        return make_panel(denormalize(img), pred.argmax(0).cpu().numpy(), label.cpu().numpy(),
                          self.args.ignore_index, self.palette, self.args.class_names)

    def save_prediction(self, pred, name, folder):
        """Writes one image's (num_classes, H, W) logits into `folder` at its path `name` with
        .png: a palette PNG of class indices in the pictures' colours, which data/image_io's
        read_label reads as a label (16-bit grey past 256 classes). Returns its row of
        predict.py's predictions.csv."""
        classes = pred.argmax(0).cpu().numpy()  # (H, W)
        out = os.path.splitext(name)[0] + '.png'
        os.makedirs(os.path.dirname(os.path.join(folder, out)), exist_ok=True)
        if self.args.num_classes > 256:  # more classes than a palette holds
            png = Image.fromarray(classes.astype(np.uint16))
        else:
            png = Image.fromarray(classes.astype(np.uint8))
            png.putpalette(self.png_palette.tobytes())  # an 'L' image becomes a 'P' one
        png.save(os.path.join(folder, out))
        return {'path': name, 'prediction': out}

    def prediction_picture(self, img, pred):
        """predict.py's picture of one image: its classes over it, and a legend of their colours."""
        return overlay(denormalize(img), pred.argmax(0).cpu().numpy(), self.args.class_names,
                       self.palette)
