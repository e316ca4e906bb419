"""ConfigError: a mistake in what the user gave (a flag, a list file, a checkpoint), as opposed to a bug.
The command-line entry points print it as one line and exit 1; a bug still shows its full traceback."""
import sys


class ConfigError(Exception):
    """Raise with a message that names the bad value, what was expected and how to fix it."""


def user_message(e):
    """The message of a ConfigError. One raised in a DataLoader worker arrives re-raised with the worker's
    traceback in front of it; keep only the original message."""
    text = str(e)
    marker = 'ConfigError: '
    return text.rsplit(marker, 1)[1].strip() if 'Original Traceback' in text and marker in text else text


def run_cli(main):
    """Runs `main()` and turns a ConfigError into `error: <message>` on stderr and exit status 1."""
    try:
        main()
    except ConfigError as e:
        print(f'error: {user_message(e)}', file=sys.stderr)
        sys.exit(1)
