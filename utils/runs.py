"""Know your runs at a glance.
    python -m utils.runs
        every run under checkpoints/: progress, best value, commit, status
    python -m utils.runs --diff RUN_A RUN_B
        the flags that differ between two runs, and their best values"""
import argparse
import json
import os

from utils.errors import ConfigError, run_cli
from utils.run_status import current_status, read_status

# differ between any two runs; say nothing
NOT_EXPERIMENT = ('model_dir', 'resume', 'checkpoints_dir')


def read_json(path):
    """The dict in the JSON file `path`; {} when there is none or it is damaged (one bad file must
    not stop the listing of every run)."""
    try:
        with open(path, 'rb') as f:
            found = json.loads(f.read().decode('utf-8'))
    except (OSError, ValueError):  # ValueError: JSON's and UTF-8's errors
        return {}
    return found if isinstance(found, dict) else {}


def status_word(run_dir, status):
    if status:
        return current_status(status)
    if os.path.isfile(os.path.join(run_dir, 'status.json')):
        return 'damaged status.json'
    return 'unknown'


def run_row(run_dir):
    """One line of the table: the run's folder, args.json, status.json and
    run_info.json summed up."""
    args = read_json(os.path.join(run_dir, 'args.json'))
    status = read_status(run_dir) or {}
    git = read_json(os.path.join(run_dir, 'run_info.json')).get('git', {})
    best = status.get('best_metric')
    return {'run': os.path.basename(run_dir),
            'started': status.get('started', '?').replace('T', ' '),
            'model': args.get('model_type', '?'),
            'data': args.get('data_type', '?'),
            'epochs': f'{status.get("epochs_done", 0)}/{args.get("epochs", "?")}',
            'best': (f'{args.get("monitor", "?")} {best:.4f} @{status.get("best_epoch")}'
                     if best is not None else '-'),
            'commit': (git.get('commit') or '-')[:8] + ('+dirty' if git.get('dirty') else ''),
            'status': status_word(run_dir, status)}


def list_runs(checkpoints_dir):
    """The run folders (those holding args.json) directly under `checkpoints_dir`, by name (main
    sorts them)."""
    if not os.path.isdir(checkpoints_dir):
        raise ConfigError(f'{checkpoints_dir} does not exist: no runs yet (python train.py makes '
                          'one), or pass the folder that holds them with --checkpoints_dir')
    return [os.path.join(checkpoints_dir, d) for d in sorted(os.listdir(checkpoints_dir))
            if os.path.isfile(os.path.join(checkpoints_dir, d, 'args.json'))]


def table(header, rows):
    """Aligned columns: `header` names them, each row is a list of values."""
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
    return '\n'.join('  '.join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def resolve(run, checkpoints_dir):
    """A run given as a path, or as a folder name under checkpoints_dir."""
    for path in (run, os.path.join(checkpoints_dir, run)):
        if os.path.isfile(os.path.join(path, 'args.json')):
            return path
    raise ConfigError(f'{run} is not a run folder (no args.json in {run} or '
                      f'{os.path.join(checkpoints_dir, run)}); '
                      'python -m utils.runs lists the runs')


def shown(args, name):
    return json.dumps(args[name]) if name in args else '-'


def diff(run_a, run_b):
    """The flags whose values differ (`-`: a flag only one run has), the commits and the model
    and data source files when they differ, then both runs' best values and status."""
    a, b = (read_json(os.path.join(r, 'args.json')) for r in (run_a, run_b))
    rows = [[f'--{k}', shown(a, k), shown(b, k)] for k in sorted(set(a) | set(b))
            if k not in NOT_EXPERIMENT and shown(a, k) != shown(b, k)]
    row_a, row_b = run_row(run_a), run_row(run_b)
    if row_a['commit'] != row_b['commit']:
        rows.append(['commit', row_a['commit'], row_b['commit']])
    hashes_a, hashes_b = (read_json(os.path.join(r, 'run_info.json')).get('source_hashes', {})
                          for r in (run_a, run_b))
    changed = sorted(f for f in set(hashes_a) | set(hashes_b) if hashes_a.get(f) != hashes_b.get(f))
    if changed:  # the same flags can still train a different model when its code changed in between
        rows.append(['source differs', ' '.join(changed), ''])
    rows.append(['best', f'{row_a["best"]} ({row_a["status"]})',
                 f'{row_b["best"]} ({row_b["status"]})'])
    return table(['flag', run_a, run_b], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoints_dir', default='checkpoints',
                        help='where train.py made the run folders')
    parser.add_argument('--diff', nargs=2, metavar=('RUN_A', 'RUN_B'),
                        help='two run folders (or names in it)')
    args = parser.parse_args(argv)
    if args.diff:
        print(diff(*(resolve(r, args.checkpoints_dir) for r in args.diff)))
    else:
        rows = [run_row(r) for r in list_runs(args.checkpoints_dir)]
        # oldest first; unknown start times first
        rows.sort(key=lambda row: row['started'].replace('?', ''))
        if rows:
            print(table(list(rows[0]), [list(r.values()) for r in rows]))
        else:
            print(f'no runs in {args.checkpoints_dir}')


if __name__ == '__main__':
    run_cli(main)
