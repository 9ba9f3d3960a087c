"""Generic coercers for setting values; every other module may import this one.

Each coercer takes the value and the *label* to blame (the full setting key
such as ``"session.timeout"``, or a bare argument name for directive
keywords) and raises :class:`pyramid.exceptions.ConfigurationError` naming
both.  Already-typed values (an int, a bool, a path) pass through.
"""
import datetime
import os

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist

_TRUE = frozenset(('true', 'yes', 'on', '1', 't', 'y'))
_FALSE = frozenset(('false', 'no', 'off', '0', 'f', 'n'))
#: Every word :func:`as_bool` accepts.
BOOLEAN_WORDS = _TRUE | _FALSE


def fail(label, value, expected):
    """Raise the ConfigurationError for ``label`` = ``value``: it must be ``expected``."""
    if isinstance(value, str):
        value = mask_url(value)
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
    fail(label, value, 'true or false')


def as_int(value, label, minimum=0, allow_none=False):
    """Coerce a whole number no smaller than ``minimum`` (None allowed if asked)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_none:
            return None
        fail(label, value, 'a whole number')
    if isinstance(value, bool):
        fail(label, value, 'a whole number')
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            fail(label, value, 'a whole number')
    if number < minimum:
        fail(label, value, 'a whole number of at least %d' % minimum)
    return number


def as_positive_int(value, label):
    """Coerce a whole number of at least 1."""
    return as_int(value, label, minimum=1)


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
        fail(label, value, 'a non-empty string')
    if not isinstance(value, str):
        fail(label, value, 'a string')
    return value


def as_required_str(value, label):
    """Coerce a non-empty string."""
    return as_str(value, label, allow_none=False)


def as_float(value, label, allow_none=True):
    """Coerce an optional non-negative number."""
    if value is None or value == '':
        if allow_none:
            return None
        fail(label, value, 'a number')
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(label, value, 'a number')
    if number < 0:
        fail(label, value, 'a number of at least 0')
    return number


def as_timeout(value, label):
    """Coerce an optional number of seconds greater than 0, fractions allowed."""
    number = as_float(value, label)
    if number == 0:
        fail(label, value, 'a number of seconds greater than 0')
    return number


def as_path(value, label):
    """Coerce an optional directory: a string or a path object."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return as_str(value, label)


def as_list(value):
    """Split a whitespace or comma separated setting into names."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return aslist(str(value).replace(',', ' '))


def as_host_port(value, label, default_port=None):
    """Coerce ``host:port`` (IPv6 hosts in brackets) into ``(host, port)``."""
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
    else:
        text = as_required_str(value, label).strip()
        host, colon, port = text.rpartition(':')
        if not colon or (']' in port):
            host, port = text, default_port
        host = host.strip('[]')
    if not host or port is None:
        fail(label, value, 'host:port')
    try:
        number = int(port)
    except (TypeError, ValueError):
        fail(label, value, 'host:port with a numeric port')
    if not 0 < number < 65536:
        fail(label, value, 'host:port with a port from 1 to 65535')
    return host, number


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
