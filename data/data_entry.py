"""Picks the dataset named by --data_type and wraps it in a DataLoader.
Add a dataset: write data/<name>.py with a Dataset class, then add one line to type2data (and
its flags, if it has any, to options.py). A segmentation dataset subclasses SegDataset
(data/seg_dataset.py) and only finds its files; any dataset class has:
  __init__(args, is_train), __len__, __getitem__(index) -> (image tensor, target tensor)
  check_inputs(args, is_train)  static: checks its files before a run starts
  split_name(args)  static, optional: names the split evaluated in eval.py's result folder
  defaults  {'class_names': [...], 'ignore_index': N} used where the flags give none, or {}
  palette   (K, 3) uint8 RGB colours of the classes for pictures, or None
  size(index) -> (H, W), optional: validation batches images of one size together"""
import torch
from torch.utils.data import DataLoader

from data.ade20k import ADE20KDataset
from data.cityscapes import CityscapesDataset
from data.cls_list_dataset import ClsListDataset
from data.folder import FolderDataset
from data.list_dataset import ListDataset
from data.mem_list_dataset import MemListDataset
from data.sampler import SizeBatchSampler, make_sampler
from data.voc import VOCDataset
from utils.errors import ConfigError
from utils.stop import ignore_stop_signals

type2data = {  # --data_type name -> Dataset class; only the chosen one is built. EDIT ME: add yours
    'list': ListDataset,
    'mem_list': MemListDataset,
    'cls_list': ClsListDataset,
    'voc': VOCDataset,
    'cityscapes': CityscapesDataset,
    'ade20k': ADE20KDataset,
    'folder': FolderDataset,
}


def get_dataset_by_type(args, is_train):
    if args.data_type not in type2data:
        raise ConfigError(
            f'unknown --data_type {args.data_type!r}; choose one of {", ".join(type2data)}'
        )
    return type2data[args.data_type](args, is_train)


def make_loader(dataset, args, is_train):
    # The order is a function of (--seed, epoch), set each epoch by the Trainer; under
    # torchrun, this process's share.
    sampler = make_sampler(len(dataset), args, is_train)
    if is_train:
        batches = {'batch_size': args.batch_size, 'sampler': sampler}
    else:  # images of one size a batch: each is scored at its own size
        size = getattr(dataset, 'size', None)
        batch_sampler = SizeBatchSampler(sampler.indices, args.batch_size, size,
                                         args.limit_val_batches)
        batches = {'batch_sampler': batch_sampler}
    return DataLoader(
        dataset,
        **batches,
        num_workers=args.num_workers,
        worker_init_fn=ignore_stop_signals,
        persistent_workers=args.num_workers > 0,  # no new worker processes every epoch
        pin_memory=torch.cuda.is_available(),  # page-locked buffers make .to(cuda) asynchronous
        # worker seeds: leaves the global RNG alone
        generator=torch.Generator().manual_seed(args.seed),
    )


def select_train_loader(args):
    return make_loader(get_dataset_by_type(args, True), args, is_train=True)


def select_eval_loader(args):
    return make_loader(get_dataset_by_type(args, False), args, is_train=False)


def close_loaders(*loaders):
    """Ends the loaders' worker processes now, as a finished run's loaders end when collected.
    Needed after an error: its traceback keeps the loaders alive until the interpreter's exit
    hooks, which then wait forever for workers that ignore SIGTERM (see ignore_stop_signals)
    and never get the loader's own shutdown."""
    for loader in loaders:
        # with persistent workers, the loader keeps its iterator
        iterator = getattr(loader, '_iterator', None)
        if iterator is not None:
            # torch's own shutdown: asks each worker to stop, waits for it
            iterator._shutdown_workers()
            loader._iterator = None
