"""ClsListDataset: images and their class, one `image_path class_index` line each in a list file
(blank lines and `#` comments are skipped); relative paths resolve against the list file's folder.
Images are read as RGB and must all have one size (the default collate stacks them), as the demo's
(data/make_shapes_cls.py) do."""
import re

import cv2
import numpy as np
from torch.utils.data import Dataset

from data.augment import to_tensor
from data.list_dataset import check_file, decode, list_lines, resolve
from data.make_shapes import ensure_demo_data
from utils.errors import ConfigError

LINE = '`image_path class_index`'  # what a line of this dataset's list holds, as messages show it


def read_cls_list(list_path, num_classes, ignore_index):
    """Returns [(image_path, class_index, line_number)] with paths made absolute; reads no image,
    so it checks a list before training. A ConfigError names the first bad line."""
    samples = []
    for n, (image, text) in list_lines(list_path, LINE):
        expected = f'0..{num_classes - 1} (--num_classes) or {ignore_index} (--ignore_index)'
        if not re.fullmatch(r'-?[0-9]+', text):
            raise ConfigError(f'{list_path}:{n}: class index {text!r} is not an integer; expected '
                              f'{expected}')
        cls = int(text)
        if not 0 <= cls < num_classes and cls != ignore_index:  # else the loss fails, unexplained
            raise ConfigError(f'{list_path}:{n}: class index {cls}, expected {expected}')
        samples.append((resolve(list_path, image), cls, n))
    return samples


class ClsListDataset(Dataset):
    @staticmethod
    def check_inputs(args, is_train):
        """Reads the list files before a run starts, not their images (the demo's are made on
        first use)."""
        for path in ([args.train_list] if is_train else []) + [args.val_list]:
            ensure_demo_data(path)
            read_cls_list(path, args.num_classes, args.ignore_index)

    def __init__(self, args, is_train):
        self.list_path = args.train_list if is_train else args.val_list
        self.samples = read_cls_list(self.list_path, args.num_classes, args.ignore_index)
        self.is_train = is_train
        self.seed = args.seed

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """Decodes sample `index` into an (H, W, 3) uint8 RGB image and its class index as a 0-d
        int64 array, a label like ListDataset.load's: to_tensor takes both."""
        img_path, cls, n = self.samples[index]
        where = f'{self.list_path}:{n}'
        check_file(img_path, where, LINE)
        img = decode(img_path, where, cv2.IMREAD_COLOR)
        return img[:, :, ::-1], np.array(cls, np.int64)  # cv2 decodes to BGR

    def __getitem__(self, index):
        """(3, H, W) float32 image normalized as data/augment.to_tensor does, 0-d int64 class."""
        img, label = self.load(index)
        if self.is_train:  # drawn from (seed, epoch, index) only, as in ListDataset
            rng = np.random.default_rng([self.seed, getattr(index, 'epoch', 0), int(index)])
            if rng.random() < 0.5:  # EDIT ME: augmentations that keep the class
                img = img[:, ::-1]
        return to_tensor(img, label)
