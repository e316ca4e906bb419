"""What the Trainer updates the weights with: the optimizer (--optimizer), the learning rate
schedule (--scheduler, --warmup_epochs), the mixed precision type (--amp, --amp_dtype) and an
exponential moving average of the weights (--ema). Another optimizer goes into build_optimizer
(and the --optimizer choices), another schedule into LRSchedule.factor."""
import copy
import math
from contextlib import nullcontext

import torch


def build_optimizer(model, args):
    """--momentum is the momentum of the gradient for all three: SGD's momentum, Adam's and
    AdamW's beta1. --weight_decay is an L2 penalty added to the gradient for SGD and Adam, and a
    decoupled decay for AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == 'sgd':
        return torch.optim.SGD(
            params,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
        )
    optimizer = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW}[args.optimizer]
    return optimizer(
        params,
        lr=args.lr,
        betas=(args.momentum, args.beta),
        weight_decay=args.weight_decay,
    )


def state_copies(args):
    """How many tensors of each trainable parameter's size the optimizer keeps (its share of
    last.pth): Adam's and AdamW's two moments, SGD's momentum buffer (none without momentum)."""
    if args.optimizer == 'sgd':
        return 1 if args.momentum else 0
    return 2


class LRSchedule:
    """Sets the learning rate before every optimizer update from the position in training alone
    (t: epochs done, fractional within an epoch), so a resumed run goes on along the same curve;
    only `plateau` has a state.
      warmup: lr * (k + 1) / (warmup_epochs * steps_per_epoch) for the k-th step (from 0) of the
              warmup epochs
      step:    lr * lr_gamma ** ((epoch - 1) // lr_step_size), changing at epoch boundaries
               (torch's StepLR)
      cosine:  min_lr + (lr - min_lr)
               * (1 + cos(pi * (t - warmup_epochs) / (epochs - warmup_epochs))) / 2
      plateau: lr * lr_gamma once the monitored value has not improved for more than lr_patience
               epochs, down to min_lr"""

    def __init__(self, optimizer, args, steps_per_epoch):
        self.optimizer, self.args, self.steps_per_epoch = optimizer, args, steps_per_epoch
        self.base_lrs = [group['lr'] for group in optimizer.param_groups]
        self.plateau = {'factor': 1.0, 'best': None, 'bad_epochs': 0}

    def factor(self, t):
        args = self.args
        if args.scheduler == 'step':
            factor = args.lr_gamma ** (int(t) // args.lr_step_size)
        elif args.scheduler == 'cosine':
            after_warmup = max(t - args.warmup_epochs, 0)
            progress = min(after_warmup / (args.epochs - args.warmup_epochs), 1)
            low = args.min_lr / args.lr
            factor = low + (1 - low) * (1 + math.cos(math.pi * progress)) / 2
        else:
            factor = self.plateau['factor']  # 1 unless --scheduler plateau has lowered it
        if t < args.warmup_epochs:
            warmup_steps = args.warmup_epochs * self.steps_per_epoch
            factor *= min(1.0, (t * self.steps_per_epoch + 1) / warmup_steps)
        return factor

    def set_lr(self, epoch, step):
        """Before the update made at step `step` (from 0) of epoch `epoch` (from 1)."""
        factor = self.factor(epoch - 1 + step / self.steps_per_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group['lr'] = base * factor

    def end_epoch(self, value):
        """--scheduler plateau: counts the epochs without improvement of the monitored value
        (`value`)."""
        state, args = self.plateau, self.args
        if args.scheduler != 'plateau':
            return
        if improved(value, state['best'], args.monitor_mode):
            state['best'], state['bad_epochs'] = value, 0
        else:
            state['bad_epochs'] += 1
        if state['bad_epochs'] > args.lr_patience:
            state['factor'] = max(state['factor'] * args.lr_gamma, args.min_lr / args.lr)
            state['bad_epochs'] = 0

    def state_dict(self):
        return dict(self.plateau)

    def load_state_dict(self, state):
        self.plateau = dict(state)


def improved(value, best, mode):
    """Whether `value` beats `best` (None: nothing yet) under --monitor_mode `mode`."""
    return best is None or (value > best if mode == 'max' else value < best)


def autocast(device, dtype):
    """Mixed precision for the forward pass and the loss when `dtype` (amp_dtype's) is not None."""
    if dtype is None:
        # entering a disabled torch.autocast at every step cost 40 us (0.3 % of a cls step)
        return nullcontext()
    return torch.autocast(device.type, dtype)


def amp_dtype(args, device):
    """The autocast type of --amp: bfloat16 on the CPU, float16 (with a GradScaler) on a GPU,
    unless --amp_dtype."""
    if not args.amp:
        return None
    if args.amp_dtype == 'auto':
        return torch.bfloat16 if device.type == 'cpu' else torch.float16
    return getattr(torch, args.amp_dtype)


class ModelEMA:
    """--ema DECAY: an exponential moving average of the weights and buffers (BatchNorm statistics
    included), ema = d * ema + (1 - d) * model after every optimizer update, with
    d = min(DECAY, (1 + n) / (10 + n)) after n updates: the warm-up lets the average leave the
    random initial weights within the first hundreds of updates (with a plain 0.999, they still
    weigh 37 % after 1000). It is what validation, best.pth, early stopping and eval.py use;
    checkpoints hold it as `ema` beside the raw `model`, and last.pth holds `ema_updates` (n)."""

    def __init__(self, model, decay):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        ema_tensors = self.module.state_dict().values()
        model_tensors = model.state_dict().values()
        for ema, new in zip(ema_tensors, model_tensors, strict=True):
            if ema.is_floating_point():
                ema.lerp_(new, 1 - decay)
            else:  # e.g. BatchNorm's num_batches_tracked: a count, not something to average
                ema.copy_(new)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)
