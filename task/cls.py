"""Image classification: a batch is (images, class indices), the model gives a score per class."""
import os

import torch

from data.augment import denormalize
from data.make_shapes_cls import CLS_CLASS_NAMES, CLS_DEMO_DIR
from loss import select_loss
from metrics import ClsMetrics
from utils.input_size import padded_forward
from utils.viz import captioned, class_picture


class ClsTask:
    # The flags that go with the task, used where the command line does not give them.
    defaults = {'model_type': 'cls_base', 'data_type': 'cls_list', 'loss': 'ce',
                'train_list': os.path.join(CLS_DEMO_DIR, 'train.txt'),
                'val_list': os.path.join(CLS_DEMO_DIR, 'val.txt'),
                'class_names': list(CLS_CLASS_NAMES), 'ignore_index': -100,
                'monitor': 'val/top1', 'monitor_mode': 'max'}

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.criterion = select_loss(args)  # cross-entropy takes (B, C) logits as well
        self.memory_format = torch.channels_last if args.channels_last else torch.preserve_format

    def forward(self, model, data):
        """(input, prediction, target) of a batch as the dataset gives it: on the device, through
        the model. The Trainer and Evaluator call it under --amp's autocast."""
        img, label = data  # (B, 3, H, W) float, (B,) int64
        img, pred = self.infer(model, img)  # (B, num_classes) logits
        return img, pred, label.to(self.device, non_blocking=True)

    def infer(self, model, img):
        """(input on the device, logits) of a batch of normalized images: the one place the model
        runs, for training, eval.py and predict.py alike. Padded up to the model's input_multiple
        (utils/input_size.py): a score per image needs nothing cut back."""
        img = img.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return img, padded_forward(model, img, crop=False)  # (B, 3, H, W), (B, num_classes)

    def loss(self, pred, label):
        return self.criterion(pred, label)

    def make_metrics(self):
        return ClsMetrics(self.args.class_names, self.args.ignore_index)

    def picture(self, img, pred, label):
        """One sample as an (H, W, 3) uint8 RGB picture: the input, captioned with the predicted
        class and its probability, and the true class."""
        prob = pred.float().softmax(0)
        names = self.args.class_names
        guess = int(prob.argmax())
        truth = names[label] if 0 <= label < len(names) else 'ignored'
        return class_picture(denormalize(img), f'{names[guess]} {prob[guess]:.2f}', truth)

    def save_prediction(self, pred, name, folder):
        """One image's (num_classes,) logits as its row of predict.py's predictions.csv: the
        likeliest class and its probability, then the next ones of the top k = min(5, classes)."""
        scores, indices = pred.float().softmax(0).topk(min(5, len(pred)))
        names = [self.args.class_names[i] for i in indices.tolist()]
        row = {'path': name, 'class': names[0], 'score': f'{scores[0]:.4f}'}
        for k in range(1, len(names)):
            row[f'class_{k + 1}'] = names[k]
            row[f'score_{k + 1}'] = f'{scores[k]:.4f}'
        return row

    def prediction_picture(self, img, pred):
        """predict.py's picture of one image: it, captioned with the class and its probability."""
        prob = pred.float().softmax(0)
        guess = int(prob.argmax())
        return captioned(denormalize(img), f'{self.args.class_names[guess]} {prob[guess]:.2f}')
