"""Picks the dataset named by --data_type and wraps it in a DataLoader.
Add a dataset: write data/<name>.py with a Dataset class taking (args, is_train) and a static
check_inputs(args, is_train) that checks its files before a run starts (see ListDataset), then
add one line to type2data."""
import torch
from torch.utils.data import DataLoader

from data.cls_list_dataset import ClsListDataset
from data.list_dataset import ListDataset
from data.make_shapes import ensure_demo_data
from data.mem_list_dataset import MemListDataset
from data.sampler import make_sampler
from utils.errors import ConfigError
from utils.stop import ignore_stop_signals

type2data = {  # --data_type name -> Dataset class; only the chosen one is built. EDIT ME: add yours
    'list': ListDataset,
    'mem_list': MemListDataset,
    'cls_list': ClsListDataset,
}


def get_dataset_by_type(args, is_train):
    if args.data_type not in type2data:
        raise ConfigError(
            f'unknown --data_type {args.data_type!r}; choose one of {", ".join(type2data)}'
        )
    ensure_demo_data(args.train_list if is_train else args.val_list)
    return type2data[args.data_type](args, is_train)


def make_loader(dataset, args, is_train):
    # The order is a function of (--seed, epoch), set each epoch by the Trainer; under
    # torchrun, this process's share.
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=make_sampler(len(dataset), args, is_train),
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
