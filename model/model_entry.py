"""Builds the model named by --model_type, and spreads it over several GPUs when --gpus lists
more than one.
Add a model: create model/<name>/ with an nn.Module whose __init__ takes args and whose class
attribute `task` names the task it serves ('seg', 'cls'), then add one line to type2model. A
model that takes only some sizes declares it: `input_multiple = 32` when the height and width
must be multiples of 32; every image is then padded up to that and its prediction cut back
(utils/input_size.py), in training, eval.py and predict.py alike."""
import torch.nn as nn

from model.base import BaseModel
from model.best import BestModel
from model.better import BetterModel
from model.cls_base import ClsBaseModel
from model.smp_fpn import SmpFpnModel
from model.sota import SotaModel
from utils.dist import is_distributed, wrap_ddp
from utils.errors import ConfigError
from utils.input_size import input_multiple
from utils.weights import load_model_weights

# --model_type name -> nn.Module class; only the chosen one is built. EDIT ME: add yours
type2model = {
    'base': BaseModel,
    'better': BetterModel,
    'best': BestModel,
    'sota': SotaModel,
    'smp_fpn': SmpFpnModel,
    'cls_base': ClsBaseModel,
}


def select_model(args):
    if args.model_type not in type2model:
        raise ConfigError(
            f'unknown --model_type {args.model_type!r}; choose one of {", ".join(type2model)}'
        )
    model = type2model[args.model_type](args)
    input_multiple(model)  # a bad declaration fails here, not at the first step
    return model


def load_trained(args, ckpt, folder=None):
    """The model of the checkpoint `ckpt` (read from --load_model_path), with its weights (the
    EMA's when the run used them), in eval mode on the CPU; and load_model_weights' report of
    a --load_not_strict load (written into `folder`), else None. eval.py, predict.py and
    export.py rebuild a model this one way."""
    model = select_model(args)
    report = load_model_weights(model, args.load_model_path, not args.load_not_strict, folder,
                                ckpt)
    return model.eval(), report


def equip_multi_gpu(model, args):
    """Under torchrun, DistributedDataParallel (utils/dist.py); else DataParallel over --gpus
    when several are listed. Keep a reference to the unwrapped model for saving: both prefix
    every state dict key with `module.`."""
    if is_distributed():
        return wrap_ddp(model, args)
    if args.gpus and len(args.gpus) > 1:
        model = nn.DataParallel(model, device_ids=args.gpus)
    return model
