"""Predicts with a checkpoint on images without labels: one image, a folder of them (searched
recursively) or a list file of image paths. Writes predictions.csv (segmentation: a palette PNG of
class indices per image too) and, with --save_viz, the task's pictures beside the checkpoint.
Run: python predict.py --load_model_path checkpoints/<run>/best.pth --input PATH [--save_viz]"""
import collections
import csv
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from data.augment import to_tensor
from data.data_entry import close_loaders
from data.image_io import image_size, read_image
from data.list_file import list_lines, resolve
from data.sampler import SizeBatchSampler
from model.model_entry import equip_multi_gpu, load_trained
from options import prepare_predict_args
from task.task_entry import select_task
from utils.checkpoint import write_text
from utils.errors import ConfigError, run_cli
from utils.folder_lock import release_folders
from utils.optim import amp_dtype, autocast
from utils.run_dir import remove_run_dir
from utils.stop import ignore_stop_signals
from utils.torch_utils import get_device, set_seed
from utils.viz import save_image

log = logging.getLogger('torchbase')
IMAGE_TYPES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')  # what a folder is searched for
NO_LABEL = np.zeros(0, np.int64)  # to_tensor converts an image and its label: an image alone


class Predictor:
    def __init__(self, args, ckpt):
        """ckpt: the checkpoint that prepare_predict_args read from --load_model_path."""
        self.args = args
        set_seed(args.seed, args.deterministic)
        self.device = get_device(args)
        self.task = select_task(args, self.device)
        model = load_trained(args, ckpt, args.result_dir)[0]
        model.to(self.device, memory_format=self.task.memory_format)
        self.model = equip_multi_gpu(model, args).eval()
        self.amp_dtype = amp_dtype(args, self.device)  # the run's --amp unless given
        files, names, self.skipped = list_inputs(args.input)
        self.dataset = ImageFiles(files, names, self.skipped)
        # images of one size a batch, as in eval.py: each is predicted at its own size
        batches = SizeBatchSampler(range(len(self.dataset)), args.batch_size, self.dataset.size)
        self.loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=collate,
                                 num_workers=args.num_workers, worker_init_fn=ignore_stop_signals,
                                 pin_memory=torch.cuda.is_available())
        self.predicted = 0
        self.csv_file = self.csv = None  # predictions.csv, opened at its first row

    @torch.no_grad()
    def predict(self):
        for indices, img, unreadable in tqdm(self.loader, desc='predict', dynamic_ncols=True):
            self.skipped += unreadable
            if img is None:  # no image of the batch could be read
                continue
            with autocast(self.device, self.amp_dtype):  # as in training and eval.py
                img, pred = self.step(img)
            self.save_per_batch(indices, img, pred)
        return self.finish()

    def step(self, img):
        """(input, prediction) of a batch of images: the task runs the model, on the whole images
        or, with --slide_crop, on windows of them."""
        if self.args.slide_crop:  # on the device whole: the windows are views of it
            img = img.to(self.device, non_blocking=True)
            return slide_infer(lambda window: self.task.infer(self.model, window), img,
                               self.args.slide_crop)
        return self.task.infer(self.model, img)

    def save_per_batch(self, indices, img, pred):
        for j, index in enumerate(indices):
            name = self.dataset.names[index]
            self.write_row(self.task.save_prediction(pred[j], name, self.args.result_dir))
            if self.args.save_viz:
                path = os.path.join(self.args.result_dir, 'viz', os.path.splitext(name)[0] + '.png')
                os.makedirs(os.path.dirname(path), exist_ok=True)
                save_image(path, self.task.prediction_picture(img[j], pred[j]))
        self.predicted += len(indices)
        self.csv_file.flush()  # what is predicted is on disk, should a later batch fail

    def write_row(self, row):
        if self.csv is None:  # the first row's keys are the columns
            path = os.path.join(self.args.result_dir, 'predictions.csv')
            self.csv_file = open(path, 'w', newline='', encoding='utf-8')
            self.csv = csv.DictWriter(self.csv_file, fieldnames=list(row))
            self.csv.writeheader()
        self.csv.writerow(row)

    def finish(self):
        """Lists the files skipped in skipped.txt, and says how many."""
        self.close()
        folder = self.args.result_dir
        if self.skipped:
            path = os.path.join(folder, 'skipped.txt')
            write_text(path, '\n'.join(self.skipped) + '\n')
            more = f'\n  ... and {len(self.skipped) - 10} more' if len(self.skipped) > 10 else ''
            log.warning(f'warning: skipped {len(self.skipped)} files that are not images or '
                        f'cannot be read (listed in {path}):\n  '
                        + '\n  '.join(self.skipped[:10]) + more)
        log.info(f'Predicted {self.predicted} images: {folder}')
        return {'result_dir': folder, 'predicted': self.predicted, 'skipped': len(self.skipped)}

    def close(self):
        if self.csv_file:
            self.csv_file.close()
        close_loaders(self.loader)


def list_inputs(path):
    """(files, names, skipped) of --input `path`: an image, a folder searched recursively for
    IMAGE_TYPES, or a list file of image paths; names: the files' paths relative to the folder or
    the list's folder (outside it: their absolute path made relative); skipped: messages about
    the folder's other files. A ConfigError when there is no image."""
    skipped = []
    if os.path.isdir(path):
        found = sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                       for name in names if not name.startswith('.'))  # e.g. .DS_Store
        files = [f for f in found if os.path.splitext(f)[1].lower() in IMAGE_TYPES]
        images = set(files)
        skipped = [f'{f}: not an image ({", ".join(IMAGE_TYPES)})' for f in found
                   if f not in images]
        base = path
    elif os.path.splitext(path)[1].lower() in IMAGE_TYPES:
        files, base = [path], os.path.dirname(path)
    else:
        files = [resolve(path, image) for _, (image,) in list_lines(path, '`image_path`')]
        base = os.path.dirname(path)
    if not files:
        raise ConfigError(f'--input {path} holds no image ({", ".join(IMAGE_TYPES)}): pass an '
                          'image, a folder of images or a list file of image paths')
    names = [relative_name(f, base) for f in files]
    warn_of_same_stems(names)
    return files, names, skipped


def relative_name(file, base):
    name = os.path.relpath(file, base)
    if name == os.pardir or name.startswith(os.pardir + os.sep):  # a list's line outside it
        name = os.path.splitdrive(os.path.abspath(file))[1].lstrip(os.sep)
    return name


def warn_of_same_stems(names):
    """a.jpg and a.png would both write a.png (a segmentation, a picture): the last one stays."""
    stems = collections.Counter(os.path.splitext(name)[0] for name in names)
    same = [stem for stem, n in stems.items() if n > 1]
    if same:
        log.warning(f'warning: {len(same)} names differ only in their extension (e.g. {same[0]}): '
                    'their .png files overwrite one another; rename them to keep each')


class ImageFiles(Dataset):
    """The images of --input, read and normalized as the datasets read theirs (data/image_io,
    data/augment.to_tensor): (index, (3, H, W) float32 image, '') or (index, None, why not)."""

    def __init__(self, files, names, skipped):
        self.files, self.names, self.sizes = [], [], []
        for file, name in zip(files, names, strict=True):
            try:  # from the header: batches images of one size together
                self.sizes.append(image_size(file, '--input'))
            except ConfigError as e:
                skipped.append(str(e))
                continue
            self.files.append(file)
            self.names.append(name)
        if not self.files:
            raise ConfigError(f'none of the {len(files)} images of --input can be read, e.g. '
                              f'{skipped[-1]}')

    def __len__(self):
        return len(self.files)

    def size(self, index):
        return self.sizes[index]

    def __getitem__(self, index):
        try:
            img = read_image(self.files[index], '--input')  # (H, W, 3) uint8 RGB
        except ConfigError as e:  # e.g. a truncated file: its header is whole
            return index, None, str(e)
        if img.shape[:2] != self.sizes[index]:  # it would not fit its batch
            return index, None, (f'--input: {self.files[index]} decodes to {img.shape[:2]}, its '
                                 f'header says {self.sizes[index]}')
        return index, to_tensor(img, NO_LABEL)[0], ''


def collate(samples):
    """(indices, (B, 3, H, W) images, messages) of the readable images of a batch (one size), the
    messages naming the others; images None when none can be read."""
    readable = [(index, img) for index, img, _ in samples if img is not None]
    unreadable = [why for _, img, why in samples if img is None]
    imgs = torch.stack([img for _, img in readable]) if readable else None
    return [index for index, _ in readable], imgs, unreadable


def slide_infer(infer, img, window):
    """(input, logits) of the (B, 3, H, W) images `img` from windows of (h, w) = `window`: they
    step by 2/3 of a window (the last one of a row or column ends at the border), and the logits
    are averaged where they overlap. An image smaller than a window is padded with zeros (the
    mean colour, normalized), cut off the logits again. infer(window) -> (input, logits)."""
    (h, w), (height, width) = window, img.shape[-2:]
    img = F.pad(img, (0, max(w - width, 0), 0, max(h - height, 0)))  # (B, 3, >= h, >= w)
    total = count = None
    for y in window_starts(img.shape[-2], h):
        for x in window_starts(img.shape[-1], w):
            _, logits = infer(img[..., y:y + h, x:x + w])  # (B, C, h, w)
            if logits.ndim != 4 or logits.shape[-2:] != (h, w):
                raise ConfigError(f'--slide_crop {h} {w}: the task predicts a window as '
                                  f'{tuple(logits.shape)}, not as a (B, C, {h}, {w}) map of its '
                                  'pixels; leave --slide_crop out for this task')
            if total is None:
                total = logits.new_zeros(logits.shape[:2] + img.shape[-2:], dtype=torch.float32)
                count = logits.new_zeros(img.shape[-2:], dtype=torch.float32)
            total[..., y:y + h, x:x + w] += logits.float()
            count[y:y + h, x:x + w] += 1
    return img[..., :height, :width], (total / count)[..., :height, :width]


def window_starts(size, window):
    """Where the windows of a row (or column) of `size` pixels start."""
    stride = max(1, window * 2 // 3)
    return list(range(0, size - window, stride)) + [size - window]


def main(argv=None):
    predictor = args = None
    try:
        args, ckpt = prepare_predict_args(argv)
        try:
            predictor = Predictor(args, ckpt)
            return predictor.predict()
        except (ConfigError, KeyboardInterrupt, SystemExit):
            # nothing to predict, a checkpoint that does not fit, or stopped midway: leave no
            # folder, as eval.py leaves no result cut short
            if predictor:
                predictor.close()
            remove_run_dir(args.result_dir)
            raise
    finally:
        if predictor:
            predictor.close()
        release_folders()


if __name__ == '__main__':
    run_cli(main)
