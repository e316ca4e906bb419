"""ConfigError: a mistake in what the user gave (a flag, a list file, a checkpoint), as opposed to a bug.
The command-line entry points print it as one line and exit 1; a bug still shows its full traceback."""
import sys


class ConfigError(Exception):
    """Raise with a message that names the bad value, what was expected and how to fix it."""


def run_cli(main):
    """Runs `main()` and turns a ConfigError into `error: <message>` on stderr and exit status 1."""
    try:
        main()
    except ConfigError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
