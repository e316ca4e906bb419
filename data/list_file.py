"""Reading list files: one sample a line, fields separated by spaces, or by tabs in a line that
holds a tab, so that paths may hold spaces (`'\t'.join(fields)` writes such a line); blank lines
and `#` comments are skipped, relative paths resolved against the list file's folder. UTF-8 (a
BOM and CRLF are fine), else GB18030 (GBK), with a warning. Shared by the datasets that read
lists (data/list_dataset.py, data/cls_list_dataset.py)."""
import io
import logging
import os

from utils.errors import ConfigError

log = logging.getLogger('torchbase')
read_as_gb18030 = set()  # the list files said to be GB18030: said once, not at every read


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
        fields = [f.strip() for f in line.split('\t')] if '\t' in line else line.split()
        fields = [f for f in fields if f]  # two tabs in a row: one separator
        if len(fields) != len(line_format.split()):
            raise ConfigError(f'{list_path}:{n}: expected {line_format}, got {line!r}'
                              + spaces_hint(fields, line, line_format))
        lines.append((n, fields))
    if not lines:
        raise ConfigError(f'{list_path} lists no samples; add lines of {line_format}')
    return lines


def spaces_hint(fields, line, line_format):
    """What to do when a line has more fields than `line_format`: perhaps paths with spaces."""
    if len(fields) <= len(line_format.split()) or '\t' in line:
        return ''
    return (f' ({len(fields)} fields split at spaces); for paths with spaces, separate the '
            'fields with a tab: a line holding a tab is split at tabs only')


def list_text(list_path, data, line_format):
    """The text of a list file's bytes `data` (without a leading byte order mark): UTF-8, else
    GB18030 with a warning (a superset of GBK, which Python writes by default on a Chinese
    Windows); or a ConfigError naming the line of the first byte that is not UTF-8 text: a
    binary file passed as a list, or another encoding."""
    nul = data.find(b'\0')  # valid text, but in no list: a binary file
    for encoding in ('utf-8', 'gb18030') if nul < 0 else ():
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != 'utf-8' and list_path not in read_as_gb18030:
            read_as_gb18030.add(list_path)
            log.warning(f'warning: {list_path} is not UTF-8: read as GB18030 (GBK); save it as '
                        'UTF-8 to be sure that its paths are read as written')
        return text.removeprefix('\ufeff')
    try:
        data.decode('utf-8')
        bad = nul
    except UnicodeDecodeError as e:
        bad = e.start if nul < 0 else min(nul, e.start)
    line = len(data[:bad].replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n'))
    raise ConfigError(f'{list_path}:{line}: not a text file of {line_format} lines (byte '
                      f'{data[bad]:#04x} at offset {bad} is not UTF-8 text, nor GB18030); pass '
                      'the list file, saved as UTF-8')


def check_file(path, where, line_format):
    """A ConfigError naming `where` (`list:line`) unless `path` is a file. Checked before
    decoding: cv2 would also print a warning of its own."""
    if os.path.isdir(path):
        raise ConfigError(f'{where}: cannot read {path}: it is a directory, not a file (a line '
                          f'holds {line_format})')
    if not os.path.isfile(path):
        raise ConfigError(f'{where}: cannot read {path}: no such file (paths in a list are '
                          'relative to its folder)')
