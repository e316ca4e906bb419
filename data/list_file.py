"""Reading list files: one sample a line, fields separated by spaces (blank lines and `#`
comments are skipped), relative paths resolved against the list file's folder. Shared by the
datasets that read lists (data/list_dataset.py, data/cls_list_dataset.py)."""
import io
import os

from utils.errors import ConfigError


def resolve(list_path, path):
    """`path` of a line of the list file `list_path`, absolute: a relative one is relative to the
    list file's folder."""
    return os.path.join(os.path.dirname(os.path.abspath(list_path)), path)


def list_lines(list_path, line_format):
    """[(line_number, fields)] of a list file's sample lines, each with as many fields as
    `line_format` names (e.g. "`image_path label_path`"); a ConfigError for a missing,
    unreadable, binary or empty file, or a line with another number of fields."""
    what = 'is a directory, not a file' if os.path.isdir(list_path) else 'does not exist'
    if not os.path.isfile(list_path):
        raise ConfigError(f'list file {list_path} {what}; pass an existing one with --train_list / '
                          f'--val_list (lines of {line_format})')
    try:
        with open(list_path, 'rb') as f:
            text = list_text(list_path, f.read(), line_format)
    except OSError as e:
        raise ConfigError(f'cannot read list file {list_path} ({e.strerror}): make it '
                          'readable') from None
    lines = []
    # newline=None: \r\n and \r end lines too
    for n, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != len(line_format.split()):
            raise ConfigError(f'{list_path}:{n}: expected {line_format}, got {line!r}')
        lines.append((n, fields))
    if not lines:
        raise ConfigError(f'{list_path} lists no samples; add lines of {line_format}')
    return lines


def list_text(list_path, data, line_format):
    """The UTF-8 text of a list file's bytes `data` (without a leading byte order mark), or a
    ConfigError naming the line of the first byte that is not text: a binary file passed as a
    list, or another encoding."""
    bad = data.find(b'\0')  # valid UTF-8, but in no list: a binary file
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
    if bad < 0:
        return text.removeprefix('\ufeff')
    line = len(data[:bad].replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n'))
    raise ConfigError(f'{list_path}:{line}: not a text file of {line_format} lines (byte '
                      f'{data[bad]:#04x} at offset {bad} is not UTF-8 text); pass the list file, '
                      'saved as UTF-8')


def check_file(path, where, line_format):
    """A ConfigError naming `where` (`list:line`) unless `path` is a file. Checked before
    decoding: cv2 would also print a warning of its own."""
    if os.path.isdir(path):
        raise ConfigError(f'{where}: cannot read {path}: it is a directory, not a file (a line '
                          f'holds {line_format})')
    if not os.path.isfile(path):
        raise ConfigError(f'{where}: cannot read {path}: no such file (paths in a list are '
                          'relative to its folder)')
