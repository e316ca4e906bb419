"""ListDataset: samples named by a list file, one `image_path label_path` line each (blank lines and
`#` comments are skipped); relative paths resolve against the list file's folder.
Images are read as RGB, labels as single-channel PNGs holding the class index of each pixel.
The helpers that read a list file and its images also serve data/cls_list_dataset.py."""
import io
import os

import cv2
import numpy as np
from torch.utils.data import Dataset

from data.augment import augment, to_tensor
from data.make_shapes import ensure_demo_data
from utils.errors import ConfigError

LINE = '`image_path label_path`'  # what a line of this dataset's list holds, as messages show it


def read_list(list_path):
    """Returns [(image_path, label_path, line_number)] with paths made absolute."""
    return [(resolve(list_path, image), resolve(list_path, label), n)
            for n, (image, label) in list_lines(list_path, LINE)]


def resolve(list_path, path):
    """`path` of a line of the list file `list_path`, absolute: a relative one is relative to the
    list file's folder."""
    return os.path.join(os.path.dirname(os.path.abspath(list_path)), path)


def list_lines(list_path, line_format):
    """[(line_number, fields)] of a list file's sample lines, each with as many fields as
    `line_format` (e.g. LINE) names; a ConfigError for a missing, unreadable, binary or empty
    file, or a line with another number of fields."""
    what = 'is a directory, not a file' if os.path.isdir(list_path) else 'does not exist'
    if not os.path.isfile(list_path):
        raise ConfigError(f'list file {list_path} {what}; pass an existing one with --train_list / '
                          f'--val_list (lines of {line_format})')
    try:
        with open(list_path, 'rb') as f:
            text = list_text(list_path, f.read(), line_format)
    except OSError as e:
        raise ConfigError(f'cannot read list file {list_path} ({e.strerror}): make it '
                          'readable') from None
    lines = []
    # newline=None: \r\n and \r end lines too
    for n, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != len(line_format.split()):
            raise ConfigError(f'{list_path}:{n}: expected {line_format}, got {line!r}')
        lines.append((n, fields))
    if not lines:
        raise ConfigError(f'{list_path} lists no samples; add lines of {line_format}')
    return lines


def list_text(list_path, data, line_format=LINE):
    """The UTF-8 text of a list file's bytes `data` (without a leading byte order mark), or a
    ConfigError naming the line of the first byte that is not text: a binary file passed as a
    list, or another encoding."""
    bad = data.find(b'\0')  # valid UTF-8, but in no list: a binary file
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
    if bad < 0:
        return text.removeprefix('\ufeff')
    line = len(data[:bad].replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n'))
    raise ConfigError(f'{list_path}:{line}: not a text file of {line_format} lines (byte '
                      f'{data[bad]:#04x} at offset {bad} is not UTF-8 text); pass the list file, '
                      'saved as UTF-8')


def check_file(path, where, line_format=LINE):
    """A ConfigError naming `where` (`list:line`) unless `path` is a file. Checked before
    decoding: cv2 would also print a warning of its own."""
    if os.path.isdir(path):
        raise ConfigError(f'{where}: cannot read {path}: it is a directory, not a file (a line '
                          f'holds {line_format})')
    if not os.path.isfile(path):
        raise ConfigError(f'{where}: cannot read {path}: no such file (paths in a list are '
                          'relative to its folder)')


def decode(path, where, flags):
    """The image file at `path` decoded by cv2 with `flags`, or a ConfigError naming `where`."""
    arr = cv2.imread(path, flags)
    if arr is None:
        raise ConfigError(f'{where}: cannot read {path}: not an image, or a corrupt one')
    return arr


class ListDataset(Dataset):
    @staticmethod
    def check_inputs(args, is_train):
        """Reads the list files before a run starts (the demo's are made on first use)."""
        for path in ([args.train_list] if is_train else []) + [args.val_list]:
            ensure_demo_data(path)
            read_list(path)

    def __init__(self, args, is_train):
        self.list_path = args.train_list if is_train else args.val_list
        self.samples = read_list(self.list_path)
        self.is_train = is_train
        self.num_classes = args.num_classes
        self.ignore_index = args.ignore_index
        self.seed = args.seed

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """Decodes sample `index` into an (H, W, 3) uint8 RGB image and an (H, W) uint8 label."""
        img_path, label_path, n = self.samples[index]
        where = f'{self.list_path}:{n}'
        for path in (img_path, label_path):  # both, before either is decoded
            check_file(path, where)
        img = decode(img_path, where, cv2.IMREAD_COLOR)
        label = decode(label_path, where, cv2.IMREAD_UNCHANGED)
        if label.ndim != 2 or label.shape != img.shape[:2]:
            raise ConfigError(f'{where}: label {label_path} has shape {label.shape}, expected a '
                              f'single-channel image of the image size {img.shape[:2]}')
        bad = label[(label >= self.num_classes) & (label != self.ignore_index)]
        if bad.size:  # would crash deep in the loss, or be miscounted, without a hint of which file
            raise ConfigError(f'{where}: label {label_path} holds class {bad.max()}, expected '
                              f'0..{self.num_classes - 1} (--num_classes) or {self.ignore_index} '
                              '(--ignore_index)')
        return img[:, :, ::-1], label  # cv2 decodes to BGR

    def __getitem__(self, index):
        img, label = self.load(index)
        if self.is_train:
            # the training sampler's indices carry their epoch (data/sampler.py): the augmentation
            # depends on (seed, epoch, index) only, not on which worker loads the sample or when
            epoch = getattr(index, 'epoch', 0)
            rng = np.random.default_rng([self.seed, epoch, int(index)])
            img, label = augment(img, label, rng)
        return to_tensor(img, label)
