"""torch.distributed under torchrun: one process per GPU (NCCL) or per CPU worker (gloo),
launched by `torchrun --nproc_per_node N train.py ...`. Without torchrun every function here acts
for one process alone, so the Trainer calls them unconditionally."""
import datetime
import inspect
import os
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from utils.errors import ConfigError


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if is_distributed() else 0


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def is_main():
    """Rank 0: the one process that writes the run folder, logs, curves, checkpoints and results."""
    return rank() == 0


def local_rank():
    return int(os.environ.get('LOCAL_RANK', 0))


def init_distributed(args):
    """Joins the process group that torchrun describes in the environment (WORLD_SIZE, RANK,
    MASTER_ADDR, ...). A collective that waits longer than --dist_timeout seconds raises instead
    of hanging forever."""
    if int(os.environ.get('WORLD_SIZE', 1)) <= 1 or is_distributed():
        if args.sync_bn and not is_distributed():
            warnings.warn('--sync_bn has no effect in one process: it shares BatchNorm '
                          'statistics between the processes that torchrun starts', stacklevel=2)
        return
    if args.dist_timeout <= 0:
        raise ConfigError(f'--dist_timeout must be positive, got {args.dist_timeout}')
    if args.gpus:
        raise ConfigError('--gpus (DataParallel in one process) and torchrun (one process per '
                          'GPU) do not mix: leave out --gpus under torchrun (each process takes '
                          'the GPU of its LOCAL_RANK)')
    device = None
    if torch.cuda.is_available():
        if local_rank() >= torch.cuda.device_count():
            raise ConfigError(f'torchrun started process {local_rank()} on a machine with '
                              f'{torch.cuda.device_count()} GPUs: pass --nproc_per_node '
                              f'{torch.cuda.device_count()}')
        device = torch.device('cuda', local_rank())
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device else 'gloo',
                            timeout=datetime.timedelta(seconds=args.dist_timeout),
                            device_id=device)  # NCCL binds the process to its GPU at once


def close_distributed(model_holder=None, wait=True):
    """Leaves the process group (once; a no-op without one). The DDP module
    (`model_holder.model`) is released and the processes meet at a barrier first: with gloo, a
    process whose group is destroyed under a live DDP module, or before its peers are done, can
    abort at exit. After a failure, wait=False: a peer may be gone."""
    if model_holder is not None:
        model_holder.model = None
    if is_distributed():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def convert_sync_bn(model):
    """--sync_bn: BatchNorm layers become SyncBatchNorm, in place (same parameters, buffers and
    state dict keys), so that a reference to the unwrapped model stays valid."""
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model, (
        'a model that is itself one BatchNorm layer cannot be converted in place')
    return model


def wrap_ddp(model, args):
    """DistributedDataParallel: each backward averages the gradients over the processes."""
    if args.sync_bn:
        convert_sync_bn(model)
    # No buffer sync in the forward pass (torch >= 2.13 names it forward_sync_buffers), so shards
    # of unequal length cannot hang in validation; the Trainer gives every process rank 0's
    # buffers before it validates
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = 'forward_sync_buffers' if 'forward_sync_buffers' in names else 'broadcast_buffers'
    device_ids = [local_rank()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=device_ids, **{no_sync: False})


def broadcast_buffers(model):
    """Rank 0's buffers (e.g. BatchNorm running statistics) copied into every process's model."""
    for buffer in model.buffers() if is_distributed() else []:
        dist.broadcast(buffer, src=0)


def comm_device():
    """Where tensors must be for collectives: the process's GPU with NCCL, the CPU with gloo."""
    if dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def all_reduce(tensor, op='sum'):
    """`tensor` summed (or maxed) over all processes, on the tensor's own device."""
    if not is_distributed():
        return tensor
    out = tensor.to(comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM if op == 'sum' else dist.ReduceOp.MAX)
    return out.to(tensor.device)


def all_gather(obj):
    """[obj of rank 0, obj of rank 1, ...] on every process (any picklable value)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(fn):
    """fn() run by rank 0 alone, its result given to every rank. A ConfigError on rank 0 is raised
    on every rank (marked `from_main`, so that only rank 0 prints it), so no rank waits for one
    that has given up."""
    if not is_distributed():
        return fn()
    box = [None]
    if is_main():
        try:
            box[0] = ('ok', fn())
        except BaseException as e:
            box[0] = ('error', str(e) if isinstance(e, ConfigError)
                      else f'rank 0 failed: {type(e).__name__}: {e}')
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == 'error':
        error = ConfigError(value)
        error.from_main = True
        raise error
    return value
