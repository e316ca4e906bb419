"""Fitting a file's weights to a part of the model. Pretrained weights rarely have the model's
own key names: torchvision's resnet18 saves `conv1.weight`, while a segmentation model holds that
resnet as its encoder, `net.encoder.conv1.weight`.
--load_prefix OLD=NEW renames the file's keys, --load_into MODULE loads them into one sub-module,
and suggest_mapping finds the pair that fits a file best, for the error or warning that shows
it."""
from utils.errors import ConfigError


def parse_prefixes(pairs):
    """['backbone.=', 'a.=b.'] -> [('backbone.', ''), ('a.', 'b.')]; each must hold an '='."""
    parsed = []
    for pair in pairs or ():
        if '=' not in pair:
            raise ConfigError(f'--load_prefix {pair!r}: write OLD=NEW, e.g. backbone.=encoder. '
                              "(NEW may be empty: 'backbone.=' drops the prefix)")
        parsed.append(tuple(pair.split('=', 1)))
    return parsed


def rename(state, prefixes):
    """`state` with the first matching OLD prefix of each key replaced by its NEW; keys that no
    OLD matches keep their names."""
    renamed, source = {}, {}
    for key, value in state.items():
        name = key
        for old, new in prefixes:
            if key.startswith(old):
                name = new + key[len(old):]
                break
        if name in renamed:  # the later one would silently replace the first
            raise ConfigError(f'--load_prefix renames both {source[name]!r} and {key!r} to '
                              f'{name!r}: rename the prefixes of one part of the file only')
        renamed[name], source[name] = value, key
    return renamed


def sub_module(model, name):
    """The sub-module of `model` called `name` (e.g. 'net.encoder'); `model` when name is ''."""
    if not name:
        return model
    try:
        return model.get_submodule(name)
    except AttributeError:
        children = ', '.join(n for n, _ in model.named_children())
        raise ConfigError(f'--load_into {name!r}: {type(model).__name__} has no such sub-module; '
                          f'its top-level ones are {children} (print(model) shows them all)'
                          ) from None


def map_to(model, state, load_into='', prefixes=()):
    """(the module to load into, `state` with its keys renamed) for --load_into and
    --load_prefix."""
    return sub_module(model, load_into), rename(state, parse_prefixes(prefixes))


def candidate_prefixes(state):
    """'' and the first one or two dotted parts of the keys ('backbone.', 'model.backbone.'):
    the prefixes that a file's keys may carry and the model's do not."""
    found = {''}
    for key in state:
        parts = key.split('.')[:-1]  # the last part names the tensor, never a prefix
        found.update('.'.join(parts[:n]) + '.' for n in (1, 2) if len(parts) >= n)
    return sorted(found, key=len)


def suggest_mapping(model, state):
    """(load_into, prefix to drop, number of tensors of `state` that then fit by name and
    shape) of the sub-module and prefix that fit the most; ties go to the shorter mapping.
    Every sub-module of the model is tried, so it takes about a second for a large one: call it
    on the way to an error or a warning only."""
    own = {k: v.shape for k, v in model.state_dict().items()}
    best = ('', '', -1)
    for old in candidate_prefixes(state):
        rest = [(k[len(old):], v.shape) for k, v in state.items() if k.startswith(old)]
        for name, _ in model.named_modules():  # '' first: the model itself
            into = name + '.' if name else ''
            fits = sum(own.get(into + k) == shape for k, shape in rest)
            if fits > best[2]:
                best = (name, old, fits)
    return best


def mapping_flags(load_into, old):
    """The flags that ask for the mapping of suggest_mapping."""
    flags = [f'--load_into {load_into}'] if load_into else []
    return ' '.join(flags + ([f'--load_prefix {old}='] if old else []))
