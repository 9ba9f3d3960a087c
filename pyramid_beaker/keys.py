"""Cache keys: the text that identifies one call of a cached function.

Two calls share a key only when they pass equal values of the same types
to the same parameters.  The key of a call is written like a Python tuple
literal of its bound arguments, in signature order and with defaults
applied, so ``f(1, b=2)``, ``f(1, 2)`` and ``f(a=1, b=2)`` share ``(1, 2)``
while ``f('1', '2')`` gets ``('1', '2')``.  Text is ASCII (``ascii()``), so a
key's length is its size in bytes.

Keyable values:

- ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``;
- tuples, lists, sets, frozensets and dicts of keyable values (sets and
  dicts are sorted, so their order does not matter);
- dates, times, datetimes, timedeltas, ``Decimal``, ``Fraction``,
  ``complex``, ``UUID``; enum members; classes (by module and name);
- any object whose class defines ``__cache_key__(self)`` returning a
  keyable value: the deliberate-key protocol.  The key is tagged with the
  object's class, so ``User(1)`` and ``Group(1)`` differ.

Subclasses of these types (a ``namedtuple``, a ``str`` subclass) are tagged
with their class.  Anything else raises :class:`TypeError` naming the
argument: keying on ``repr()`` would put a memory address in the key.
"""
import collections
import enum
import functools
import hashlib
import inspect

#: The method that gives an object a deliberate cache key.
KEY_METHOD = '__cache_key__'

_LITERALS = frozenset((type(None), bool, int, float, str, bytes))


@functools.lru_cache(maxsize=None)
def _values():
    """Types keyed by their ``ascii()``; their modules are imported on first use."""
    import datetime
    import decimal
    import fractions
    import uuid

    return frozenset((
        datetime.date, datetime.datetime, datetime.time, datetime.timedelta,
        decimal.Decimal, fractions.Fraction, complex, uuid.UUID))


_SCALAR_BASES = (str, bytes, int, float)
_CONTAINER_BASES = (tuple, list, dict, set, frozenset)
_OWNER_AS_VALUE = (type, enum.Enum) + _SCALAR_BASES + _CONTAINER_BASES
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY,
               inspect.Parameter.POSITIONAL_OR_KEYWORD)
KEYABLE = ('None, bool, int, float, str, bytes, tuples, lists, sets and '
           'dicts of keyable values, dates, times, Decimal, UUID, enums, '
           'classes')


def _tag(cls):
    return '@%s.%s' % (cls.__module__, cls.__qualname__)


def _join(opening, parts, closing):
    return opening + ', '.join(parts) + closing


def encode_tuple(parts):
    """Join encoded items the way ``ascii()`` writes a tuple."""
    if len(parts) == 1:
        return '(%s,)' % parts[0]
    return _join('(', parts, ')')


def encode(value, label='argument'):
    """Return the key text of ``value``.

    ``label`` names the value in the :class:`TypeError` raised when it has
    no stable key (e.g. ``"argument 'user' of myapp.views.report"``).
    """
    cls = type(value)
    if cls in _LITERALS:
        return ascii(value)
    method = getattr(cls, KEY_METHOD, None)
    if method is not None:
        return '%s(%s)' % (_tag(cls), encode(method(value), label))
    if cls is tuple:
        return encode_tuple([encode(item, label) for item in value])
    if cls is list:
        return _join('[', [encode(item, label) for item in value], ']')
    if cls is dict:
        return _encode_dict(value, label)
    if cls is set or cls is frozenset:
        items = sorted(encode(item, label) for item in value)
        return _join(cls.__name__ + '({', items, '})')
    if isinstance(value, type):
        return '<class %s.%s>' % (value.__module__, value.__qualname__)
    if isinstance(value, enum.Enum):
        if isinstance(value.name, str):
            return '%s.%s' % (_tag(cls), value.name)
        return '%s(%s)' % (_tag(cls), encode(value.value, label))
    if cls in _values():
        text = ascii(value)
        if ' at 0x' not in text:  # e.g. a datetime with a home-made tzinfo
            return text
    elif isinstance(value, _SCALAR_BASES):
        if isinstance(value, str):
            text = ascii(str.__str__(value))
        else:
            base = next(base for base in _SCALAR_BASES if isinstance(value, base))
            text = base.__repr__(value)
        return '%s(%s)' % (_tag(cls), text)
    elif isinstance(value, _CONTAINER_BASES):
        base = next(base for base in _CONTAINER_BASES if isinstance(value, base))
        plain = list(value.items()) if base is dict else list(value)
        if isinstance(value, collections.OrderedDict):
            return '%s(%s)' % (_tag(cls), encode(plain, label))
        return '%s(%s)' % (_tag(cls), encode(base(plain), label))
    raise TypeError(
        'cannot build a cache key for %s: %s objects have no stable key. '
        'Pass keyable values (%s), give %s a %s() method returning one, '
        'or leave the argument out of the key with ignore=(...)'
        % (label, _describe(cls), KEYABLE, cls.__qualname__, KEY_METHOD))


def _describe(cls):
    return repr(cls.__qualname__ if cls.__module__ == 'builtins'
                else '%s.%s' % (cls.__module__, cls.__qualname__))


def _encode_dict(value, label):
    items = sorted((encode(key, label), encode(item, label))
                   for key, item in value.items())
    return _join('{', ['%s: %s' % pair for pair in items], '}')


def encode_owner(value, label):
    """Key text of a method's ``self`` or ``cls``: its class, plus its key if any.

    Classes, objects with ``__cache_key__`` and values of keyable types are
    encoded as usual.  Other instances are keyed by their class alone:
    every instance of one class shares entries, and a subclass never gets
    its parent's.
    """
    cls = type(value)
    if (cls in _LITERALS or cls in _values() or isinstance(value, _OWNER_AS_VALUE)
            or getattr(cls, KEY_METHOD, None) is not None):
        return encode(value, label)
    return _tag(cls)


def fit(key, key_length):
    """Return ``key``, or its SHA-256 digest when longer than ``key_length``.

    Unhashed keys start with ``(``, hashed ones with ``#``, so the two
    kinds can never collide.
    """
    if len(key) <= key_length:
        return key
    return '#' + hashlib.sha256(key.encode('ascii')).hexdigest()


#: How many recent calls' keys each function remembers (see :func:`_memo`).
MEMO_SIZE = 256
#: The longest key text remembered.
MEMO_TEXT = 256


class NotMemoized(Exception):
    """The key of these arguments is not remembered: compute it."""


def _memo(count):
    """Return ``memo(*args)``: the key text of ``count`` literal arguments, remembered.

    ``functools.lru_cache(typed=True)`` tells ``1``, ``True`` and ``1.0``
    apart; only arguments of the literal types are remembered (others
    raise :class:`NotMemoized`), and neither float zero, since ``0.0 ==
    -0.0`` while their keys differ.  Unhashable arguments raise TypeError.
    """

    def text(*args):
        if len(args) != count:
            raise NotMemoized
        for arg in args:
            cls = type(arg)
            if cls not in _LITERALS or (cls is float and not arg):
                raise NotMemoized
        key = ascii(args)
        if len(key) > MEMO_TEXT:
            raise NotMemoized
        return key

    return functools.lru_cache(maxsize=MEMO_SIZE, typed=True)(text)


#: What ``memo(*args)`` raises when it does not have the key (TypeError:
#: unhashable arguments).
MEMO_MISSES = (NotMemoized, TypeError)


class KeyMaker:
    """Builds the key text of calls to one function: use :attr:`key`.

    ``ignore`` names parameters left out of the key.  With ``owner=True``
    the first parameter is a method's ``self`` or ``cls`` and is keyed by
    :func:`encode_owner`.  Calls that do not fit the signature raise the
    same :class:`TypeError` as calling the function would.
    """

    def __init__(self, func, ignore=(), owner=False):
        self.name = '%s.%s' % (func.__module__, func.__qualname__)
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        unknown = [name for name in ignore if name not in self.signature.parameters]
        if unknown:
            raise TypeError('ignore=%r names %s, which %s not a parameter of %s'
                            % (tuple(ignore), ', '.join(map(repr, unknown)),
                               'is' if len(unknown) == 1 else 'are', self.name))
        self.ignore = frozenset(ignore)
        self.owner = params[0].name if owner and params else None
        #: ``key(args, kw)`` returns the key text of a call.
        self.key = self.slow
        #: The same, without :attr:`memo`.
        self.compute = self.slow
        #: ``memo(*args)``: the key of a call passing only keyword-less
        #: literal arguments, remembered; else it raises one of
        #: :data:`MEMO_MISSES`.  None for functions it does not apply to.
        self.memo = None
        positional = all(p.kind in _POSITIONAL for p in params)
        if positional and not self.ignore and self.owner is None:
            self._fast_path(len(params))

    def _fast_path(self, count):
        """Use the fast key functions for calls that pass every argument by position.

        Such a call to a function with only positional parameters and
        literal arguments has, as its key, the ``ascii()`` of its ``args``.
        The keys of the last :data:`MEMO_SIZE` such calls are remembered
        (:attr:`memo`), since writing numbers and text as key text costs
        more than the rest of a cache hit.
        """
        literals, slow = _LITERALS, self.slow

        def compute(args, kw):
            if not kw and len(args) == count:
                for arg in args:
                    if type(arg) not in literals:
                        return slow(args, kw)
                return ascii(args)
            return slow(args, kw)

        memo = self.memo = _memo(count)

        def key(args, kw):
            if not kw:
                try:
                    return memo(*args)
                except MEMO_MISSES:
                    pass
            return compute(args, kw)

        self.key, self.compute = key, compute

    def slow(self, args, kw):
        """Bind the arguments to the signature and encode each one."""
        bound = self.signature.bind(*args, **kw)
        bound.apply_defaults()
        parts = []
        for name, value in bound.arguments.items():
            if name in self.ignore:
                continue
            label = 'argument %r of %s' % (name, self.name)
            if name == self.owner:
                parts.append(encode_owner(value, label))
            else:
                parts.append(encode(value, label))
        return encode_tuple(parts)
