"""What a training checkpoint holds (checkpoint_state) and how a Trainer is put back where one left off
(load_resume_state): the model and Trainer.stateful()'s parts, the position, best value, provenance, and each
process's RNG states and partial sums."""
import logging

import torch

from utils.dist import all_gather, world_size
from utils.resume import own, resume_position, rng_state, set_rng_state

log = logging.getLogger('torchbase')


def checkpoint_state(trainer, epoch, step, scalars):
    """Everything to rebuild the Trainer's model and to resume it exactly: `epoch` epochs done, plus `step` steps
    of the next (with the partial sums of its training metrics). Only tensors and plain Python values, so the file
    loads with torch.load(weights_only=True)."""
    t = trainer
    state = {'model': t.raw_model.state_dict(), **{k: v.state_dict() for k, v in t.stateful().items()},
             'epoch': epoch, 'step': step, 'args': dict(vars(t.args)), 'metrics': scalars, 'best_metric': t.best_metric,
             'best_epoch': t.best_epoch, **t.provenance, 'world_size': world_size(),  # and each process's RNG states:
             'rng': all_gather(rng_state(t.loader_state if step else t.train_loader.generator.get_state()))}
    if t.ema:
        state['ema_updates'] = t.ema.updates  # its decay warm-up goes on from there
    if step:  # each process's partial sums, like its RNG states
        sums = {k: v.cpu() if torch.is_tensor(v) else v for k, v in t.logger.recorder.sums.items()}
        state['partial'] = all_gather({'sums': sums, 'counts': t.logger.recorder.counts,
                                       'confusion': t.metrics['train'].cm.cpu()})
    return state


def load_resume_state(trainer, ckpt):
    """Puts the Trainer where the checkpoint `ckpt` (a run's last.pth) left off."""
    trainer.raw_model.load_state_dict(ckpt['model'])
    for name, part in trainer.stateful().items():
        if name in ckpt:  # checkpoints from before a part existed lack it
            part.load_state_dict(ckpt[name])
    trainer.best_metric, trainer.best_epoch = ckpt['best_metric'], ckpt['best_epoch']
    if trainer.ema:
        trainer.ema.updates = ckpt.get('ema_updates', 0)
    trainer.start_epoch, trainer.start_step, index = resume_position(ckpt, trainer.args.epochs)
    if trainer.start_step:  # index: this process's place in the per-process lists
        partial = own(ckpt['partial'], index)
        trainer.logger.recorder.sums, trainer.logger.recorder.counts = partial['sums'], partial['counts']
        trainer.metrics['train'].cm = partial['confusion'].to(trainer.device)
    # last: nothing may draw a random number between here and the first step
    set_rng_state(own(ckpt['rng'], index), trainer.train_loader.generator)
    log.info(f'Resumed at epoch {trainer.start_epoch}, step {trainer.start_step}/{trainer.steps_per_epoch}')
