"""Builds the model named by --model_type, and spreads it over several GPUs when --gpus lists
more than one.
Add a model: create model/<name>/ with an nn.Module whose __init__ takes args and whose class
attribute `task` names the task it serves ('seg', 'cls'), then add one line to type2model."""
import torch.nn as nn

from model.base import BaseModel
from model.best import BestModel
from model.better import BetterModel
from model.cls_base import ClsBaseModel
from model.sota import SotaModel
from utils.dist import is_distributed, wrap_ddp
from utils.errors import ConfigError

# --model_type name -> nn.Module class; only the chosen one is built. EDIT ME: add yours
type2model = {
    'base': BaseModel,
    'better': BetterModel,
    'best': BestModel,
    'sota': SotaModel,
    'cls_base': ClsBaseModel,
}


def select_model(args):
    if args.model_type not in type2model:
        raise ConfigError(
            f'unknown --model_type {args.model_type!r}; choose one of {", ".join(type2model)}'
        )
    return type2model[args.model_type](args)


def equip_multi_gpu(model, args):
    """Under torchrun, DistributedDataParallel (utils/dist.py); else DataParallel over --gpus
    when several are listed. Keep a reference to the unwrapped model for saving: both prefix
    every state dict key with `module.`."""
    if is_distributed():
        return wrap_ddp(model, args)
    if args.gpus and len(args.gpus) > 1:
        model = nn.DataParallel(model, device_ids=args.gpus)
    return model
