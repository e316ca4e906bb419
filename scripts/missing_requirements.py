"""Whether this Python's environment already has what requirements files ask for, decided as pip
decides: distributions, version specifiers, environment markers, extras, and the dependencies of
what is installed (not import names). scripts/_env.sh runs it first and pip-installs on failure.
  python scripts/missing_requirements.py requirements.txt [more.txt ...]
Exit 0: everything is there, nothing printed. Exit 1: one line on what is missing, or naming a
line only pip can judge (-e, a URL or path, -c, ...): then pip decides, correct rather than fast."""
import importlib
import importlib.metadata
import os
import re
import sys

# PEP 508 parsing from `packaging`, the library pip itself applies it with. The top-level copy
# when it is 22 or newer: its parser is 30 times faster than the pyparsing one before it (1 s for
# torch's dependencies with the 21.3 that pip < 24 carries). Else pip's own copy: it is there
# wherever pip is (installing needs pip anyway), while a fresh venv may have no top-level one.
COPIES = ['pip._vendor.packaging', 'packaging']
try:
    if int(importlib.import_module('packaging').__version__.split('.')[0]) >= 22:
        COPIES.reverse()
except ImportError:
    pass
for copy in COPIES:
    try:
        requirements = importlib.import_module(f'{copy}.requirements')
        canonicalize_name = importlib.import_module(f'{copy}.utils').canonicalize_name
        break
    except ImportError:
        continue
else:
    print(f'{sys.executable} has neither pip nor packaging: cannot check, pip decides')
    sys.exit(1)
Requirement, InvalidRequirement = requirements.Requirement, requirements.InvalidRequirement

COMMENT = re.compile(r'(^|\s+)#.*$')  # pip's rule: `#` at the start or after a space
# options on where pip looks for packages: they add nothing that must be installed
WHERE = {'-i', '--index-url', '--extra-index-url', '--no-index', '-f', '--find-links',
         '--trusted-host', '--pre', '--prefer-binary', '--only-binary', '--no-binary'}


class Undecided(Exception):
    """A line that only pip can judge."""


def requirement_lines(path):
    """(path:line, text) of each requirement in `path` and in the files it names with -r, read
    as pip reads them: continued lines joined, comments removed."""
    joined, lines = '', []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if line.endswith('\\') and not COMMENT.match(line):
                joined += line[:-1]
                continue
            lines.append((f'{path}:{number}', COMMENT.sub('', joined + line).strip()))
            joined = ''
    for where, text in lines:
        option, value = (re.split(r'[\s=]\s*', text, maxsplit=1) + [''])[:2]
        if not text or option in WHERE:
            continue
        if option in ('-r', '--requirement'):  # relative to the file that names it, as in pip
            yield from requirement_lines(os.path.join(os.path.dirname(path), value))
        elif text.startswith('-') or '${' in text:  # -e, -c, per-line options, ${VARIABLES}
            raise Undecided(f'{where} `{text}`')
        else:
            yield where, text


def parse(where, text):
    try:
        req = Requirement(text)
    except InvalidRequirement:  # a path, a URL, a wheel's file name, --hash=...
        raise Undecided(f'{where} `{text}`') from None
    if req.url:  # `name @ URL`: whether the installed one came from there is pip's business
        raise Undecided(f'{where} `{text}`')
    return req


def installed():
    """{canonical name: (version, its requirements)}; the first of a name on sys.path wins, as
    for imports and for pip. Each metadata file is parsed once: that is most of the time taken."""
    found = {}
    for dist in importlib.metadata.distributions():
        meta = dist.metadata
        name = canonicalize_name(meta['Name'] or '')
        if name and name not in found:  # .requires reads an egg-info's requires.txt too
            found[name] = meta['Version'], meta.get_all('Requires-Dist') or dist.requires or []
    return found


def missing(paths):
    """What the files ask for, directly or as a dependency of what is installed, that is not
    installed at a version its specifier allows: ['name>=1.0 (0.9 installed)', ...]."""
    dists = installed()
    todo = [(parse(where, text), '', '') for path in paths
            for where, text in requirement_lines(path)]
    seen, lacking = set(), []
    while todo:
        req, needed_by, extras = todo.pop()
        # a dependency's marker may name an extra of the package that needs it
        if req.marker and not any(req.marker.evaluate({'extra': e}) for e in extras.split(',')):
            continue
        if str(req) in seen:
            continue
        seen.add(str(req))
        version, requires = dists.get(canonicalize_name(req.name), (None, []))
        try:  # pip takes an installed pre-release when the specifier allows its version
            ok = version is not None and req.specifier.contains(version, prereleases=True)
        except ValueError:  # a version that is not PEP 440
            raise Undecided(f'{req.name} {version}') from None
        if not ok:
            have = f' ({version} installed)' if version else ''
            lacking.append(f'{req.name}{req.specifier}{have}{needed_by}')
            continue
        for text in requires:
            todo.append((parse(f'{req.name} requires', text), f' for {req.name}',
                         ','.join(['', *sorted(req.extras)])))
    return lacking


def main(paths):
    try:
        lacking = missing(paths)
        more = f' and {len(lacking) - 5} more' if len(lacking) > 5 else ''
        why = 'missing ' + ', '.join(lacking[:5]) + more
    except (Undecided, OSError) as e:
        lacking, why = True, f'only pip can check {e}'
    if lacking:
        print(f'Installing {" ".join(paths)} into {sys.prefix} with pip ({why})')
    return 1 if lacking else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
