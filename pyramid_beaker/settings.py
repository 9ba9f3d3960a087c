"""Pure parsers: turn ``session.*`` and ``cache.*`` settings into typed options.

Nothing here touches a Configurator or a store.  Every coercer takes the
value and the *label* to blame (the full setting key such as
``"session.timeout"``, or a bare argument name for directive keywords) and
raises :class:`pyramid.exceptions.ConfigurationError` naming both.
Already-typed values (an int, a bool, an engine object) pass through.
"""
import datetime
import os
import warnings

import beaker.cache
from beaker.exceptions import InvalidCacheBackendError
from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist

from . import stores

_TRUE = frozenset(('true', 'yes', 'on', '1', 't', 'y'))
_FALSE = frozenset(('false', 'no', 'off', '0', 'f', 'n'))
_SAMESITE = {'strict': 'Strict', 'lax': 'Lax', 'none': 'None'}
SESSION_PREFIXES = ('session.', 'beaker.session.')
SECRET_OPTIONS = frozenset(('secret', 'encrypt_key', 'validate_key'))


def _fail(label, value, expected):
    raise ConfigurationError(
        '"%s" must be %s, not %r' % (label, expected, value))


def as_bool(value, label):
    """Coerce a boolean, refusing typos that ``asbool`` would read as False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    elif isinstance(value, int) and value in (0, 1):
        return bool(value)
    _fail(label, value, 'true or false')


def as_int(value, label, minimum=0, allow_none=False):
    """Coerce a whole number no smaller than ``minimum`` (None allowed if asked)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_none:
            return None
        _fail(label, value, 'a whole number')
    if isinstance(value, bool):
        _fail(label, value, 'a whole number')
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            _fail(label, value, 'a whole number')
    if number < minimum:
        _fail(label, value, 'a whole number of at least %d' % minimum)
    return number


def as_seconds(value, label, allow_none=True):
    """Coerce a positive number of seconds (int or timedelta)."""
    if isinstance(value, datetime.timedelta):
        value = int(value.total_seconds())
    return as_int(value, label, minimum=1, allow_none=allow_none)


def as_str(value, label, allow_none=True):
    """Coerce an optional non-empty string."""
    if value is None or value == '':
        if allow_none:
            return None
        _fail(label, value, 'a non-empty string')
    if not isinstance(value, str):
        _fail(label, value, 'a string')
    return value


def as_required_str(value, label):
    """Coerce a non-empty string."""
    return as_str(value, label, allow_none=False)


def as_float(value, label, allow_none=True):
    """Coerce an optional non-negative number."""
    if value is None or value == '':
        if allow_none:
            return None
        _fail(label, value, 'a number')
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(label, value, 'a number')
    if number < 0:
        _fail(label, value, 'a number of at least 0')
    return number


def as_samesite(value, label):
    """Coerce SameSite: Strict, Lax or None (case-insensitive); '' omits it."""
    if value is None or value == '':
        return None
    if isinstance(value, str) and value.strip().lower() in _SAMESITE:
        return _SAMESITE[value.strip().lower()]
    _fail(label, value, 'one of Strict, Lax, None')


def as_cookie_expires(value, label):
    """Coerce Beaker's ``cookie_expires``: bool, seconds, timedelta or datetime.

    True (the default) ends the cookie with the browser session; False keeps
    it for a long time; a number or timedelta is a lifetime; a datetime is a
    fixed end.
    """
    if isinstance(value, (bool, datetime.datetime)):
        return value
    if isinstance(value, datetime.timedelta):
        return as_seconds(value, label, allow_none=False)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return as_bool(value, label)
    try:
        return as_seconds(value, label, allow_none=False)
    except ConfigurationError:
        _fail(label, value,
              'true, false, a number of seconds, a timedelta or a datetime')


def as_serializer(value, label):
    """Coerce ``data_serializer``: 'json', 'pickle' or an object with dumps/loads."""
    if isinstance(value, str) and value.strip().lower() in ('json', 'pickle'):
        return value.strip().lower()
    if hasattr(value, 'dumps') and hasattr(value, 'loads'):
        return value
    _fail(label, value, "'json', 'pickle' or an object with dumps() and loads()")


def as_type(value, label, choices=None):
    """Coerce a storage type name: ours, an alias, or ``beaker:<type>``.

    A type whose driver is not installed is refused here, at startup.
    ``choices`` lists the names to suggest (default: every type).
    """
    if isinstance(value, str):
        name = value.strip()
        if name.startswith(stores.BEAKER_PREFIX):
            try:
                stores.beaker_class(name)
                return name
            except KeyError:
                _fail(label, value, "one of Beaker's types after 'beaker:' "
                      '(its driver must be installed)')
        try:
            name = stores.canonical_type(name)
        except KeyError:
            name = None
        if name is not None:
            try:
                stores.backend_module(name)
            except InvalidCacheBackendError as exc:
                raise ConfigurationError('"%s" = %s: %s' % (label, value, exc)) from None
            return name
    _fail(label, value, 'one of %s' % ', '.join(choices or stores.known_types()))


#: Every session option we accept, with its coercer and default.
SESSION_OPTIONS = {
    'type': (as_type, None),
    'data_dir': (as_str, None),
    'lock_dir': (as_str, None),
    'url': (as_str, None),
    'key': (as_required_str, 'beaker.session.id'),
    'secret': (as_str, None),
    'timeout': (as_seconds, None),
    'refresh_interval': (as_seconds, None),
    'cookie_expires': (as_cookie_expires, True),
    'cookie_domain': (as_str, None),
    'cookie_path': (as_required_str, '/'),
    'secure': (as_bool, False),
    'httponly': (as_bool, True),
    'samesite': (as_samesite, 'Lax'),
    'encrypt_key': (as_str, None),
    'validate_key': (as_str, None),
    'crypto_type': (as_str, None),
    'data_serializer': (as_serializer, 'json'),
    'save_accessed_time': (as_bool, True),
    'invalidate_corrupt': (as_bool, True),
    'cookie_on_exception': (as_bool, True),
    'constant_csrf_token': (as_str, None),
}
#: Options Beaker knows that have no effect here; accepted so old ini files load.
IGNORED_SESSION_OPTIONS = frozenset(
    ('auto', 'webtest_varname', 'log_file', 'use_cookies', 'id',
     'encrypt_nonce_bits', 'lock_dir_mode'))


def strip_prefix(settings, prefixes):
    """Return ``{key: value}`` for settings under any of ``prefixes``.

    Earlier prefixes win, so ``session.timeout`` beats
    ``beaker.session.timeout``.  Returns ``{key: (label, value)}``.
    """
    found = {}
    for prefix in reversed(prefixes):
        for name, value in settings.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                found[name[len(prefix):]] = (name, value)
    return found


def session_prefixes(prefix):
    """The prefixes read for ``prefix``: 'session.' also reads 'beaker.session.'."""
    if prefix == 'session.':
        return SESSION_PREFIXES
    return (prefix,)


def session_options_from_settings(settings, prefix='session.', overrides=None):
    """Return coerced session options from ``settings`` under ``prefix``.

    ``overrides`` (directive keywords or factory arguments) win over
    settings; their errors name the bare argument.
    """
    labelled = strip_prefix(settings, session_prefixes(prefix))
    for name, value in (overrides or {}).items():
        labelled[name] = (name, value)
    return coerce_session_options(labelled, prefix)


def coerce_session_options(labelled, prefix='session.'):
    """Coerce ``{option: (label, value)}`` into typed options with defaults.

    Options that were not given are blamed as ``prefix + name``.
    """
    raw = {name: value for name, (label, value) in labelled.items()}
    store_type = raw.get('type') or ('file' if raw.get('data_dir') else 'memory')
    label_of = {name: label for name, (label, value) in labelled.items()}
    options = {}
    for name, (coerce, default) in SESSION_OPTIONS.items():
        if name in raw:
            options[name] = coerce(raw[name], label_of[name])
        else:
            options[name] = default
    options['type'] = as_type(store_type, label_of.get('type', prefix + 'type'))
    extra = _backend_options(options['type'])
    for name, value in raw.items():
        if name in extra:  # backend coercers also refine shared options (url)
            options[name] = extra[name](value, label_of[name])
        elif name in SESSION_OPTIONS:
            continue
        elif name.startswith('sa.') and 'sa.' in extra:
            options[name] = extra['sa.'](value, label_of[name])
        elif name not in IGNORED_SESSION_OPTIONS:
            warnings.warn(
                'unknown session setting "%s" is ignored' % label_of[name],
                stacklevel=3)
    _check_session_options(options, label_of, prefix)
    return options


def _backend_options(type_name):
    """Return the backend-specific option coercers of ``type_name``."""
    if type_name.startswith(stores.BEAKER_PREFIX):
        return {}
    return getattr(stores.backend_module(type_name), 'OPTIONS', {})


_NEEDS_DATA_DIR = frozenset(('file', 'dbm'))
_NEEDS_URL = frozenset(('ext:redis', 'ext:memcached', 'ext:database'))


def require_location(options, store_type, label):
    """Raise unless ``options`` say where ``store_type`` keeps its data.

    Files and dbm need ``data_dir``; servers need ``url`` (a database may
    have a ``bind`` engine instead).  ``beaker:<type>`` follows ``<type>``.
    """
    base_type = store_type
    if store_type.startswith(stores.BEAKER_PREFIX):
        base_type = store_type[len(stores.BEAKER_PREFIX):]
    if base_type in _NEEDS_DATA_DIR and not options.get('data_dir'):
        missing = label('data_dir')
    elif (base_type in _NEEDS_URL and not options.get('url')
          and options.get('bind') is None):
        missing = label('url')
    else:
        return
    hint = ' (or a "bind" engine)' if base_type == 'ext:database' else ''
    raise ConfigurationError('"%s" is required for "%s" = %s%s'
                             % (missing, label('type'), store_type, hint))


def _check_session_options(options, label_of, prefix):
    """Checks that span several options."""

    def label(name):
        return label_of.get(name, prefix + name)

    if not options['secret']:
        raise ConfigurationError(
            '"%s" is required: it signs the session cookie and the stored '
            'data' % label('secret'))
    if options['timeout'] is not None and not options['save_accessed_time']:
        raise ConfigurationError(
            '"%s" cannot be false when "%s" is set: expiry needs the access '
            'time' % (label('save_accessed_time'), label('timeout')))
    interval = options['refresh_interval']
    timeout = options['timeout']
    if interval is not None and timeout is not None and interval >= timeout:
        raise ConfigurationError(
            '"%s" must be shorter than "%s" (%d), not %r'
            % (label('refresh_interval'), label('timeout'), timeout, interval))
    if options['samesite'] == 'None' and not options['secure']:
        raise ConfigurationError(
            '"%s" = None needs "%s" = true: browsers drop SameSite=None '
            'cookies that are not Secure' % (label('samesite'), label('secure')))
    require_location(options, options['type'], label)


def masked(options):
    """Return a copy of ``options`` with secrets and URL passwords masked."""
    shown = {}
    for name, value in options.items():
        if name in SECRET_OPTIONS and value:
            shown[name] = '********'
        elif name == 'url' and isinstance(value, str):
            shown[name] = mask_url(value)
        else:
            shown[name] = value
    return shown


def mask_url(url):
    """Hide the password in ``scheme://user:password@host`` style URLs."""
    scheme, sep, rest = url.partition('://')
    if not sep or '@' not in rest:
        return url
    credentials, at, host = rest.rpartition('@')
    user, colon, _ = credentials.partition(':')
    if not colon:
        return url
    return '%s://%s:********@%s' % (scheme, user, host)


def as_list(value):
    """Split a whitespace or comma separated setting into names."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return aslist(str(value).replace(',', ' '))


# -- cache regions -----------------------------------------------------------

CACHE_PREFIXES = ('cache.', 'beaker.cache.')
#: Region options every storage type takes; dropped from what Beaker's
#: namespace manager is given: ``type``, ``expire``, ``enabled``, ``key_length``.
REGION_CONTROL_OPTIONS = frozenset(('type', 'expire', 'enabled', 'key_length'))
#: Kept in a region's options only when set.
_OPTIONAL_REGION_OPTIONS = ('data_dir', 'lock_dir', 'url')
#: Only regions that sign their entries (server-side, ours) keep these.
_SIGNING_OPTIONS = ('secret', 'data_serializer')
_NOT_A_REGION_TYPE = frozenset(('cookie',))


def as_region_type(value, label):
    """Coerce a region's storage type; cookies cannot hold cache regions."""
    name = as_type(value, label, region_types())
    if name in _NOT_A_REGION_TYPE:
        _fail(label, value, 'one of %s' % ', '.join(region_types()))
    return name


def as_expire(value, label):
    """Coerce a region's ``expire``: seconds (at least 1), or none for never."""
    if value is None or (isinstance(value, str)
                         and value.strip().lower() == 'none'):
        return None
    try:
        return as_seconds(value, label, allow_none=False)
    except ConfigurationError:
        _fail(label, value, 'a whole number of seconds (at least 1) or none')


def as_positive_int(value, label):
    """Coerce a whole number of at least 1."""
    return as_int(value, label, minimum=1)


def as_path(value, label):
    """Coerce an optional directory: a string or a path object."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return as_str(value, label)


#: Every region option all storage types share, with its coercer and default.
REGION_OPTIONS = {
    'type': (as_region_type, 'memory'),
    'expire': (as_expire, 60),
    'enabled': (as_bool, True),
    'key_length': (as_positive_int, 250),
    'data_dir': (as_path, None),
    'lock_dir': (as_path, None),
    'url': (as_str, None),
    'secret': (as_str, None),
    'data_serializer': (as_serializer, 'pickle'),
}


def region_types():
    """Type names accepted for cache regions, for error messages."""
    return [name for name in stores.known_types()
            if name not in _NOT_A_REGION_TYPE]


def cache_prefixes(prefix):
    """The prefixes read for ``prefix``: 'cache.' also reads 'beaker.cache.'."""
    if prefix == 'cache.':
        return CACHE_PREFIXES
    return (prefix,)


def check_keywords(table, keywords):
    """Coerce the keywords that ``table`` knows, so bad ones fail at once.

    Used by the directives at call time; errors name the bare argument.
    Unknown keywords are left for the full parse at commit.
    """
    for name, value in keywords.items():
        if name in table:
            table[name][0](value, name)


def region_names(settings, prefix='cache.'):
    """Return the region names listed in ``<prefix>regions``, in order.

    Names are separated by commas or whitespace; a name listed twice is an
    error.
    """
    found = strip_prefix(settings, cache_prefixes(prefix)).get('regions')
    if found is None:
        return []
    label, value = found
    names = []
    for name in as_list(value):
        if name in names:
            raise ConfigurationError(
                '"%s" lists the region %r twice: %r' % (label, name, value))
        names.append(name)
    return names


def region_options_from_settings(settings, prefix='cache.'):
    """Return ``{name: options}`` for every region listed in ``<prefix>regions``.

    See :func:`region_options` for what each options dict holds.
    """
    return {name: region_options(settings, name, prefix=prefix)
            for name in region_names(settings, prefix)}


def region_options(settings, name, overrides=None, prefix='cache.'):
    """Return the effective, coerced options of the cache region ``name``.

    Layers, lowest first: the defaults (memory, 60 s, enabled, key length
    250, pickle), the top-level ``cache.*`` settings, the region's own
    ``cache.<name>.*`` settings, then ``overrides`` (directive keywords,
    whose errors name the bare argument).  ``beaker.cache.*`` is read too;
    ``cache.*`` wins over it.

    The result is what Beaker's ``cache_regions[name]`` holds: ``type`` is
    the name of the storage class in Beaker's backend registry (ours, such
    as ``pyramid_beaker.memory``, or Beaker's own for ``beaker:<type>``).
    """
    found = strip_prefix(settings, cache_prefixes(prefix))
    own = name + '.'
    layered = {}  # option -> (source, label, value); later layers win
    for key, (label, value) in found.items():
        if key != 'regions' and not key.startswith(own):
            layered[key] = ('inherited', label, value)
    for key, (label, value) in found.items():
        if key.startswith(own):
            layered[key[len(own):]] = ('region', label, value)
    for key, value in (overrides or {}).items():
        layered[key] = ('keyword', key, value)
    return _coerce_region(name, prefix, layered)


def _coerce_region(name, prefix, layered):
    def label(option):
        if option in layered:
            return layered[option][1]
        return '%s%s.%s' % (prefix, name, option)

    options = {}
    for option, (coerce, default) in REGION_OPTIONS.items():
        if option in layered:
            value = coerce(layered[option][2], label(option))
        else:
            value = default
        if value is not None or option not in _OPTIONAL_REGION_OPTIONS:
            options[option] = value
    store_type = options['type']
    beaker_own = store_type.startswith(stores.BEAKER_PREFIX)
    if beaker_own or store_type == 'memory':
        for option in _SIGNING_OPTIONS:
            del options[option]
    elif not options['secret']:
        raise ConfigurationError(
            '"%s" is required for "%s" = %s: cache regions stored outside '
            'the process sign their entries (set it for the region or as '
            '"%ssecret")' % (label('secret'), label('type'), store_type, prefix))
    module = None if beaker_own else _region_backend(store_type, label('type'))
    _add_backend_options(options, layered, getattr(module, 'OPTIONS', {}),
                         beaker_own)
    require_location(options, store_type, label)
    options['type'] = _beaker_type_name(store_type, module, label('type'))
    return options


def _add_backend_options(options, layered, extra, beaker_own):
    """Add the backend-specific options to ``options``, coerced by ``extra``.

    Inherited top-level keys the backend does not know are skipped (they
    may be meant for other regions); unknown per-region settings warn,
    unknown keywords fail.  Beaker's own classes get any per-region key.
    """
    for option, (source, where, value) in layered.items():
        if option in REGION_OPTIONS:
            if option in extra and options.get(option) is not None:
                options[option] = extra[option](options[option], where)
            continue
        family = option.split('.', 1)[0] + '.' if '.' in option else None
        if option in extra:
            options[option] = extra[option](value, where)
        elif family in extra or (beaker_own and source != 'inherited'):
            options[option] = value
        elif source == 'keyword':
            raise ConfigurationError(
                '"%s" is not an option of cache regions of type %s'
                % (where, options['type']))
        elif source == 'region':
            warnings.warn('unknown cache setting "%s" is ignored' % where,
                          stacklevel=4)


def _region_backend(store_type, label):
    """Import the backend module of ``store_type``, blaming ``label`` on failure."""
    try:
        return stores.backend_module(store_type)
    except ImportError as exc:
        raise ConfigurationError(
            '"%s" = %s cannot be used: %s' % (label, store_type, exc)) from exc


def _beaker_type_name(store_type, module, label):
    """Return the name Beaker's ``clsmap`` knows ``store_type`` by, checked."""
    if module is None:
        name = store_type[len(stores.BEAKER_PREFIX):]
    else:
        name = module.ENTRY_POINT
    try:
        found = beaker.cache.clsmap[name]
    except KeyError:
        raise ConfigurationError(
            '"%s" = %s: Beaker has no storage class named %r (is '
            'pyramid_beaker installed, so that its entry points are?)'
            % (label, store_type, name)) from None
    if isinstance(found, Exception):  # Beaker's marker for a missing driver
        raise ConfigurationError(
            '"%s" = %s cannot be used: %s' % (label, store_type, found))
    return name


# -- backend options -------------------------------------------------------------

def as_timeout(value, label):
    """Coerce an optional number of seconds greater than 0, fractions allowed."""
    number = as_float(value, label)
    if number == 0:
        _fail(label, value, 'a number of seconds greater than 0')
    return number
