"""Picks the task named by --task. A task is what a new kind of problem changes: how a batch is
unpacked and fed to the model, the loss, the metrics, the pictures, and the flags that go with
them. The Trainer (train.py) and the Evaluator (eval.py) call it and never change.
Add a task: write task/<name>.py with a class like SegTask, then add one line to type2task.
A task class has:
  defaults       {flag: value} for the flags --task decides (see SegTask's keys)
  __init__(args, device)  and sets self.memory_format (--channels_last), used for the model too
  forward(model, data) -> (input, prediction, target), all on the device: unpacks the batch,
                 then runs the model through infer
  infer(model, images) -> (input, prediction) of a batch of normalized images, on the device;
                 the model runs through utils/input_size.padded_forward (its input_multiple)
  loss(prediction, target) -> a scalar tensor
  make_metrics() -> a metric (metrics.py says what one is)
  picture(input, prediction, target) of one sample -> (H, W, 3) uint8 RGB
and, for predict.py (a task without them trains and evaluates, but cannot predict):
  save_prediction(prediction, name, folder) of one image, `name` its path relative to --input:
                 writes its files (if any) into folder, returns its row of predictions.csv (a dict)
  prediction_picture(input, prediction) of one image -> (H, W, 3) uint8 RGB, for --save_viz"""
from task.cls import ClsTask
from task.seg import SegTask
from utils.errors import ConfigError

type2task = {  # --task name -> task class; only the chosen one is built. EDIT ME: add yours
    'seg': SegTask,
    'cls': ClsTask,
}

PREDICTS = ('infer', 'save_prediction', 'prediction_picture')  # what predict.py calls


def select_task(args, device):
    if args.task not in type2task:
        raise ConfigError(f'unknown --task {args.task!r}; choose one of {", ".join(type2task)}')
    return type2task[args.task](args, device)


def check_predicts(task):
    """A ConfigError naming the methods of the contract above that --task `task` lacks for
    predict.py."""
    task_class = type2task[task]
    missing = [name for name in PREDICTS if not callable(getattr(task_class, name, None))]
    if missing:
        raise ConfigError(f'--task {task}: predict.py needs the methods {", ".join(PREDICTS)} of '
                          f'its task, and {task_class.__name__} lacks {", ".join(missing)}: add '
                          'them as task/seg.py has them (task/task_entry.py says what each does)')
