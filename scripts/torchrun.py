"""torchrun without its traceback where TorchBase's processes have said why they ended.
Same arguments:
  python scripts/torchrun.py [torchrun flags] train.py [train.py flags]
A stop signal (Ctrl-C, SIGTERM) exits with 128 + the signal, after the processes have saved
last.pth and printed the resume command. A failed process makes it exit with that process's
exit status (1 for a one-line error, 128 + N if killed by signal N) and one line naming the
rank, not torchrun's traceback and failure table, which only repeat the error above. Any other
error (a rendezvous that fails, a bug) keeps its traceback; so does plain torchrun."""
import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main


def exit_status(exitcode):
    """A process's exit status as a shell gives it: torchrun gives -N for one killed by signal N."""
    return 128 - exitcode if exitcode < 0 else exitcode


def failure_line(error):
    """One line for torchrun's ChildFailedError: the first rank to fail (the root cause in its
    table) and how."""
    rank, failure = error.get_first_failure()
    how = f'exit code {failure.exitcode}'
    if failure.exitcode < 0:
        how = f'killed by {failure.signal_name()} (exit code {exit_status(failure.exitcode)})'
    # the error file exists only if the process's entry point is decorated with torchrun's @record
    report = f'; its traceback: {failure.error_file}' if failure.error_file != '<N/A>' else ''
    return f'torchrun: rank {rank} failed first, {how}{report}'


if __name__ == '__main__':
    try:
        main()  # torch.distributed.run's own main: it reads sys.argv[1:] as torchrun does
    except SignalException as e:
        # the processes received it too (or torchrun passed it on), saved and said so
        sys.exit(128 + e.sigval)
    except ChildFailedError as e:
        print(failure_line(e), file=sys.stderr)
        sys.exit(exit_status(e.get_first_failure()[1].exitcode))
