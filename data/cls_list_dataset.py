"""ClsListDataset: images and their class, one `image_path class_index` line each in a list file
(blank lines and `#` comments are skipped); relative paths resolve against the list file's folder.
Images are read as RGB; training images of several sizes need --crop_size, as in segmentation."""
import re

import numpy as np
from torch.utils.data import Dataset

from data.augment import scale_and_crop, to_tensor
from data.image_io import image_size, read_image
from data.list_dataset import ListDataset
from data.list_file import check_file, list_lines, resolve
from data.make_shapes import ensure_demo_data
from data.seg_dataset import crop_hw, one_size
from utils.errors import ConfigError

LINE = '`image_path class_index`'  # what a line of this dataset's list holds, as messages show it


def read_cls_list(list_path, num_classes, ignore_index):
    """Returns [(image_path, class_index, where)] with paths made absolute, `where` the line as
    `list:number`; reads no image,
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
        samples.append((resolve(list_path, image), cls, f'{list_path}:{n}'))
    return samples


class ClsListDataset(Dataset):
    defaults = {}  # class names etc. come from the task (or the flags)
    palette = None

    @staticmethod
    def find(args, is_train):
        list_path = args.train_list if is_train else args.val_list
        ensure_demo_data(list_path)
        return read_cls_list(list_path, args.num_classes, args.ignore_index)

    @classmethod
    def check_inputs(cls, args, is_train):
        """Reads the list files before a run starts; when training without --crop_size, checks
        that the images have one size (their headers only)."""
        if is_train:
            one_size(cls.find(args, True), args)
        cls.find(args, False)

    @staticmethod
    def split_name(args):
        return ListDataset.split_name(args)

    def __init__(self, args, is_train):
        self.samples = self.find(args, is_train)
        self.is_train = is_train
        self.seed = args.seed
        if is_train:
            self.crop_size, self.scale_range = crop_hw(args), args.scale_range

    def __len__(self):
        return len(self.samples)

    def size(self, index):
        img_path, _, where = self.samples[index]
        return image_size(img_path, where)

    def load(self, index):
        """Decodes sample `index` into an (H, W, 3) uint8 RGB image and its class index as a 0-d
        int64 array, a label like ListDataset.load's: to_tensor takes both."""
        img_path, cls, where = self.samples[index]
        check_file(img_path, where, LINE)
        return read_image(img_path, where), np.array(cls, np.int64)

    def __getitem__(self, index):
        """(3, H, W) float32 image normalized as data/augment.to_tensor does, 0-d int64 class."""
        img, label = self.load(index)
        if self.is_train:  # drawn from (seed, epoch, index) only, as in ListDataset
            rng = np.random.default_rng([self.seed, getattr(index, 'epoch', 0), int(index)])
            if self.crop_size:
                img, _ = scale_and_crop(img, None, rng, self.crop_size, self.scale_range, 0)
            if rng.random() < 0.5:  # EDIT ME: augmentations that keep the class
                img = img[:, ::-1]
        return to_tensor(img, label)
