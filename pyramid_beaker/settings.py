"""Pure parsers: turn ``session.*`` and ``cache.*`` settings into typed options.

Nothing here touches a Configurator or a store.  Every coercer takes the
value and the *label* to blame (the full setting key such as
``"session.timeout"``, or a bare argument name for directive keywords) and
raises :class:`pyramid.exceptions.ConfigurationError` naming both.
Already-typed values (an int, a bool, an engine object) pass through.
"""
import datetime

from pyramid.exceptions import ConfigurationError

from . import stores
from .coerce import (  # noqa: F401  (re-exported: the coercers' old home)
    BOOLEAN_WORDS,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_path,
    as_positive_int,
    as_required_str,
    as_seconds,
    as_str,
    as_timeout,
    fail,
    mask_url,
)

_SAMESITE = {'strict': 'Strict', 'lax': 'Lax', 'none': 'None'}
SESSION_PREFIXES = ('session.', 'beaker.session.')
SECRET_OPTIONS = frozenset(('secret', 'encrypt_key', 'validate_key', 'secret_fallbacks'))
_fail = fail


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
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return as_bool(value, label)
    try:
        return as_seconds(value, label, allow_none=False)
    except ConfigurationError:
        _fail(label, value,
              'true, false, a number of seconds, a timedelta or a datetime')


def as_secrets(value, label):
    """Coerce old secrets: a list, or whitespace-separated in an ini file."""
    if value is None or value == '':
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) and item
                                                for item in value):
        return tuple(value)
    raise ConfigurationError('"%s" must be a list of secrets (whitespace-separated '
                             'in an ini file), not %r' % (label, type(value).__name__))


def as_migrate_from(value, label):
    """Coerce ``migrate_from``: ``beaker`` (read Beaker's sessions) or none."""
    if value is None or value == '' or (isinstance(value, str) and value.lower() == 'none'):
        return None
    if isinstance(value, str) and value.strip().lower() == 'beaker':
        return 'beaker'
    _fail(label, value, "'beaker' or none")


def as_serializer(value, label):
    """Coerce ``data_serializer``: 'json', 'pickle' or an object with dumps/loads."""
    if isinstance(value, str) and value.strip().lower() in ('json', 'pickle'):
        return value.strip().lower()
    if hasattr(value, 'dumps') and hasattr(value, 'loads'):
        return value
    _fail(label, value, "'json', 'pickle' or an object with dumps() and loads()")


def backend_for(value, label, regions=False):
    """Return ``(backend, type name)`` for the ``type`` setting ``value``.

    Accepts our type names, their aliases and ``beaker:<type>``.  A type
    whose driver is not installed is refused here, at startup, naming the
    extra to install.  With ``regions``, only types that can hold cache
    regions are accepted.
    """
    name = value.strip() if isinstance(value, str) else value
    try:
        backend, type_name = stores.find_backend(name)
    except stores.BackendUnavailable as exc:
        raise ConfigurationError('"%s" = %s: %s' % (label, value, exc)) from None
    except KeyError as exc:
        backend, expected = None, getattr(exc, 'expected', None)
    else:
        expected = None
    if backend is None or (regions and backend.namespace_manager is None):
        _fail(label, value, expected or 'one of %s'
              % ', '.join(stores.known_types(regions)))
    return backend, type_name


def as_type(value, label):
    """Coerce a storage type name: ours, an alias, or ``beaker:<type>``."""
    return backend_for(value, label)[1]


#: Every session option we accept whatever the type, with coercer and default.
SESSION_OPTIONS = {
    'type': (as_type, None),
    'key': (as_required_str, 'beaker.session.id'),
    'secret': (as_str, None),
    'secret_fallbacks': (as_secrets, ()),
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
    'migrate_from': (as_migrate_from, None),
    'migrate_table_name': (as_str, None),
}
#: Where-to-store options accepted for every type (default None); a backend
#: that uses one coerces it with its own coercer instead.
LOCATION_OPTIONS = {
    'data_dir': as_path,
    'lock_dir': as_path,
    'url': as_str,
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

    Each option is coerced once, by the backend's coercer when the type
    declares it.  Options that were not given are blamed as
    ``prefix + name``.
    """
    raw = {name: value for name, (label, value) in labelled.items()}
    label_of = {name: label for name, (label, value) in labelled.items()}

    def label(name):
        return label_of.get(name, prefix + name)

    store_type = raw.get('type') or ('file' if raw.get('data_dir') else 'memory')
    backend, type_name = backend_for(store_type, label('type'))
    options = {'type': type_name}
    for name, (coerce, default) in SESSION_OPTIONS.items():
        if name != 'type':
            options[name] = coerce(raw[name], label(name)) if name in raw else default
    options.update(dict.fromkeys(LOCATION_OPTIONS))
    for name, value in raw.items():
        if name in SESSION_OPTIONS:
            continue
        coerce = backend.coercer(name, sessions=True) or LOCATION_OPTIONS.get(name)
        if coerce is not None:
            options[name] = coerce(value, label(name))
        elif name not in IGNORED_SESSION_OPTIONS:
            known = list(SESSION_OPTIONS) + list(LOCATION_OPTIONS) + [
                option for option in backend.options if option not in backend.region_only]
            raise ConfigurationError('"%s" is not a session option for "%s" = %s%s' % (
                label(name), label('type'), type_name, did_you_mean(name, known)))
    _check_session_options(options, label)
    backend.check(options, type_name, label)
    return options


def _check_session_options(options, label):
    """Checks that span several options."""
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


def did_you_mean(name, known):
    """Return ``'; did you mean "x"?'`` for the known name closest to ``name``, or ''."""
    import difflib  # here: only a mistake needs it

    close = difflib.get_close_matches(name, [option for option in known
                                             if not option.endswith('.')], n=1)
    return '; did you mean "%s"?' % close[0] if close else ''


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


# -- cache regions -----------------------------------------------------------

CACHE_PREFIXES = ('cache.', 'beaker.cache.')
#: Region options every storage type takes; dropped from what Beaker's
#: namespace manager is given: ``type``, ``expire``, ``enabled``, ``key_length``.
REGION_CONTROL_OPTIONS = frozenset(('type', 'expire', 'enabled', 'key_length'))
#: Top-level cache settings that are not region options.
CACHE_TOP_LEVEL = frozenset(('regions',))
#: Only regions that sign their entries keep these.
_SIGNING_OPTIONS = ('secret', 'secret_fallbacks', 'data_serializer')


def as_region_type(value, label):
    """Coerce a region's storage type; cookies cannot hold cache regions."""
    return backend_for(value, label, regions=True)[1]


def as_expire(value, label):
    """Coerce a region's ``expire``: seconds (at least 1), or none for never."""
    if value is None or (isinstance(value, str)
                         and value.strip().lower() == 'none'):
        return None
    try:
        return as_seconds(value, label, allow_none=False)
    except ConfigurationError:
        _fail(label, value, 'a whole number of seconds (at least 1) or none')


#: Every region option all storage types share, with its coercer and default.
REGION_OPTIONS = {
    'type': (as_region_type, 'memory'),
    'expire': (as_expire, 60),
    'enabled': (as_bool, True),
    'key_length': (as_positive_int, 250),
    'secret': (as_str, None),
    'secret_fallbacks': (as_secrets, ()),
    'data_serializer': (as_serializer, 'pickle'),
}


def region_types():
    """Type names accepted for cache regions, for error messages."""
    return stores.known_types(regions=True)


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

    given = layered['type'][2] if 'type' in layered else REGION_OPTIONS['type'][1]
    backend, store_type = backend_for(given, label('type'), regions=True)
    options = {'type': store_type}
    for option, (coerce, default) in REGION_OPTIONS.items():
        if option != 'type':
            options[option] = (coerce(layered[option][2], label(option))
                               if option in layered else default)
    if not options['secret_fallbacks']:
        del options['secret_fallbacks']  # only kept when set
    if not backend.signs_entries:
        for option in _SIGNING_OPTIONS:
            options.pop(option, None)
    elif not options['secret']:
        raise ConfigurationError(
            '"%s" is required for "%s" = %s: cache regions stored outside '
            'the process sign their entries (set it for the region or as '
            '"%ssecret")' % (label('secret'), label('type'), store_type, prefix))
    _add_backend_options(options, layered, backend)
    backend.check(options, store_type, label)
    options['type'] = _beaker_type_name(backend, store_type, label('type'))
    return options


def _add_backend_options(options, layered, backend):
    """Add the type's own options to ``options``, each coerced once.

    Inherited top-level keys the type does not know are skipped (they may
    be meant for other regions); unknown per-region settings warn, unknown
    keywords fail.  Beaker's own classes get any per-region key as given.
    """
    for option, (source, where, value) in layered.items():
        if option in REGION_OPTIONS:
            continue
        coerce = backend.coercer(option) or LOCATION_OPTIONS.get(option)
        if coerce is not None:
            value = coerce(value, where)
            if value is not None:
                options[option] = value
        elif backend.open_options and source != 'inherited':
            options[option] = value
        elif source != 'inherited':
            known = list(REGION_OPTIONS) + list(LOCATION_OPTIONS) + list(backend.options)
            raise ConfigurationError(
                '"%s" is not an option of cache regions of type %s%s'
                % (where, options['type'], did_you_mean(option, known)))


def _beaker_type_name(backend, store_type, label):
    """Return the name Beaker's ``clsmap`` knows ``store_type`` by, checked."""
    name = backend.beaker_type(store_type)
    try:
        found = stores.namespace_manager_class(name)
    except KeyError:
        raise ConfigurationError(
            '"%s" = %s: Beaker has no storage class named %r (is '
            'pyramid_beaker installed, so that its entry points are?)'
            % (label, store_type, name)) from None
    if isinstance(found, Exception):  # Beaker's marker for a missing driver
        raise ConfigurationError(
            '"%s" = %s cannot be used: %s' % (label, store_type, found))
    return name


def check_cache_settings(settings, configured, prefix='cache.'):
    """Raise for ``cache.*`` settings that no configured region can use.

    ``configured`` holds the names of every region the app configured.  A
    ``<prefix><name>.<option>`` key must name one of them (or an option
    family such as ``sa.``); a top-level ``<prefix><option>`` must be an
    option of some storage type.  Errors name the key and the closest
    known name.
    """
    families, options = set(), set(REGION_OPTIONS) | set(LOCATION_OPTIONS)
    options.update(CACHE_TOP_LEVEL)
    loaded = False

    def add_backend_options():
        # Only for keys the common options do not explain: this imports
        # every backend module, hence every installed driver.
        nonlocal loaded
        if not loaded:
            loaded = True
            for backend in stores.all_backends():
                for option in backend.options:
                    (families if option.endswith('.') else options).add(option)

    for key, (label, value) in strip_prefix(settings, cache_prefixes(prefix)).items():
        head, dot, _ = key.partition('.')
        if (key not in options if not dot else head not in configured):
            add_backend_options()
        if not dot:
            if key not in options:
                raise ConfigurationError('"%s" is not a cache option%s'
                                         % (label, did_you_mean(key, options)))
        elif head not in configured and head + '.' not in families:
            raise ConfigurationError(
                '"%s" sets an option of the cache region %r, which is not '
                'configured (add it to "%sregions")%s'
                % (label, head, prefix, did_you_mean(head, configured)))
