"""SegDataset: what every segmentation dataset does once it knows where its files are: decode a
sample (data/image_io.py), turn the label's values into class indices, check them, and augment
a training sample. A dataset of a layout (data/voc.py, data/folder.py, ...) only finds its
files, and says what the flags leave out: its class names, ignore index and colours.
A subclass sets:
  defaults   {'class_names': [...], 'ignore_index': N}: used where the flags give none
  palette    (K, 3) uint8 RGB colour of each class, or None: pictures use it, and a label
             saved in those colours is read back as their class indices
  label_map  None, or a 256-entry uint8 array: stored label value -> class index (Cityscapes)
  vflip      whether training flips images upside down too: True for the demo's shapes, False
             for photos (a street or a room has an up)
  find(args, is_train) -> [(image_path, label_path, where)], `where` naming the sample in
             errors (e.g. `train.txt:12`); a ConfigError when there is nothing to read
  split_name(args) -> a name of the evaluated split, for eval.py's result folder"""
import numpy as np
from torch.utils.data import Dataset

from data.augment import augment, to_tensor
from data.image_io import image_size, read_image, read_label
from utils.errors import ConfigError


class SegDataset(Dataset):
    defaults = {}
    palette = None
    label_map = None
    vflip = True

    @classmethod
    def check_inputs(cls, args, is_train):
        """Finds the files before a run starts; when training without --crop_size, checks that
        the images have one size, which batches of more than one need."""
        if is_train:
            one_size(cls.find(args, True), args)
        cls.find(args, False)

    def __init__(self, args, is_train):
        self.samples = self.find(args, is_train)
        self.is_train = is_train
        self.num_classes = args.num_classes
        self.ignore_index = args.ignore_index
        self.seed = args.seed
        self.geometry = {'crop_size': crop_hw(args), 'ignore_index': args.ignore_index,
                         'scale_range': args.scale_range, 'vflip': self.vflip} if is_train else {}

    def __len__(self):
        return len(self.samples)

    def size(self, index):
        """(H, W) of sample `index`'s image, from its file's header (data/sampler.py batches
        validation images of one size together)."""
        img_path, _, where = self.samples[index]
        return image_size(img_path, where)

    def load(self, index):
        """Decodes sample `index` into an (H, W, 3) uint8 RGB image and an (H, W) label of class
        indices."""
        img_path, label_path, where = self.samples[index]
        img = read_image(img_path, where)
        # colour-coded labels are read through the palette: class indices, not stored values to map
        colours = self.palette if self.label_map is None else None
        label = read_label(label_path, where, colours)
        if label.shape != img.shape[:2]:
            raise ConfigError(f'{where}: label {label_path} is {label.shape[1]} x '
                              f'{label.shape[0]}, its image {img_path} '
                              f'{img.shape[1]} x {img.shape[0]}: they must be the same size')
        if self.label_map is not None:
            if label.max(initial=0) >= len(self.label_map):  # e.g. a 16-bit label
                raise ConfigError(f'{where}: label {label_path} holds the value {label.max()}; '
                                  f'this dataset stores 0..{len(self.label_map) - 1}')
            label = self.label_map[label]
        bad = label[(label >= self.num_classes) & (label != self.ignore_index)]
        if bad.size:  # would crash deep in the loss, or be miscounted, without a hint of which file
            raise ConfigError(f'{where}: label {label_path} holds class {bad.max()}, expected '
                              f'0..{self.num_classes - 1} (--num_classes) or {self.ignore_index} '
                              f'(--ignore_index); values found: {np.unique(label).tolist()}')
        return img, label

    def __getitem__(self, index):
        img, label = self.load(index)
        if self.is_train:
            # the training sampler's indices carry their epoch (data/sampler.py): the augmentation
            # depends on (seed, epoch, index) only, not on which worker loads the sample or when
            epoch = getattr(index, 'epoch', 0)
            rng = np.random.default_rng([self.seed, epoch, int(index)])
            img, label = augment(img, label, rng, **self.geometry)
        return to_tensor(img, label)


def crop_hw(args):
    """--crop_size as (H, W), or None: one value is a square."""
    return None if not args.crop_size else (args.crop_size[0], args.crop_size[-1])


def one_size(samples, args):
    """A ConfigError naming two sizes when the training images are not all of one size and
    nothing makes them so (--crop_size); batches of one need no single size."""
    if crop_hw(args) or args.batch_size == 1:
        return
    first = None
    for img_path, _, where in samples:
        try:
            size = image_size(img_path, where)
        except ConfigError:  # a missing or broken file: said when it is read (or --check_data)
            continue
        first = first or (size, where)
        if size != first[0]:
            (h, w), (h0, w0) = size, first[0]
            raise ConfigError(f'the training images differ in size: {first[1]} is {w0} x {h0}, '
                              f'{where} is {w} x {h}; pass --crop_size H W (e.g. --crop_size '
                              f'{min(h, h0)} {min(w, w0)}), or --batch_size 1')
