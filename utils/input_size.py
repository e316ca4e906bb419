"""A model's rule for the size of its input: the class attribute `input_multiple = N` says that
the height and width it takes must be multiples of N (32 for an encoder that halves them five
times). The tasks' infer runs every model through padded_forward, which pads to the rule."""
import torch.nn as nn
import torch.nn.functional as F

from utils.errors import ConfigError

WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def input_multiple(model):
    """The `input_multiple` that the class of `model` declares, 1 when none; read under the
    wrappers of --gpus, torchrun and --compile, whose own classes do not carry it."""
    # torch.compile's module keeps the model as _orig_mod (looked up in _modules: hasattr would
    # raise and catch an AttributeError at every step)
    while isinstance(model, WRAPPERS) or '_orig_mod' in model._modules:
        model = model.module if isinstance(model, WRAPPERS) else model._orig_mod
    multiple = getattr(type(model), 'input_multiple', 1)
    if type(multiple) is not int or multiple < 1:  # bool is an int subclass: refused too
        raise ConfigError(f'{type(model).__name__}.input_multiple is {multiple!r}: declare a '
                          'whole number of pixels >= 1 that the height and width of its input '
                          'must be multiples of (e.g. input_multiple = 32), or leave it out')
    return multiple


def pad_to_multiple(img, multiple):
    """(B, 3, H, W) images padded right and bottom with zeros (the mean colour, normalized) up to
    a height and width that are multiples of `multiple`; `img` itself when they are already."""
    height, width = img.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(img, (0, pad_w, 0, pad_h)) if pad_h or pad_w else img


def padded_forward(model, img, crop):
    """model(img) for (B, 3, H, W) images of any size: padded up to the model's input_multiple;
    with `crop`, the (B, C, H', W') output cut back to (B, C, H, W) (a prediction per pixel, at
    the input's resolution). A model that declares no rule runs on `img` itself, nothing added."""
    padded = pad_to_multiple(img, input_multiple(model))
    if padded is img:
        return model(img)
    out = model(padded)  # (B, C, H', W') or, e.g. for cls, (B, C)
    return out[..., :img.shape[-2], :img.shape[-1]] if crop else out
