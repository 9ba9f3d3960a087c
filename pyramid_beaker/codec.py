"""Serializers for stored data: JSON or pickle inside a signed envelope.

Everything a server-side store writes goes through a codec made here.  The
envelope is ``b'PB1' + kind + mac + payload``: ``kind`` is one byte naming the
payload format and ``mac`` is an HMAC-SHA256 over ``kind + payload``.  The MAC
is checked in constant time before the payload is parsed, so bytes that the
app did not write itself (a planted pickle, a record written by Beaker's own
classes, a truncated file) are rejected and never unpickled.
"""
import hmac
import json
import pickle

MAGIC = b'PB1'
_MAC_SIZE = 32
_HEADER_SIZE = len(MAGIC) + 1 + _MAC_SIZE


class InvalidData(ValueError):
    """Stored bytes that are not a valid envelope signed with our key."""


def derive_key(secret, purpose):
    """Return a signing key for ``purpose`` derived from ``secret``.

    Sessions and cache regions sign with different keys, so a value cached
    by one can never be passed off as the other.
    """
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    return hmac.new(secret, b'pyramid_beaker:' + purpose.encode(), 'sha256').digest()


def _json_dumps(obj):
    return json.dumps(obj, separators=(',', ':'), ensure_ascii=False).encode()


def _pickle_dumps(obj):
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


_FORMATS = {
    'json': (b'j', _json_dumps, json.loads),
    'pickle': (b'p', _pickle_dumps, pickle.loads),
}


class SignedCodec:
    """Dump and load values in the signed envelope.

    ``serializer`` is ``'json'``, ``'pickle'`` or an object with ``dumps`` and
    ``loads`` methods (its payload is signed like the built-in ones).
    """

    def __init__(self, serializer, secret, purpose):
        if not secret:
            raise ValueError('a signed codec needs a secret')
        if isinstance(serializer, str):
            self.kind, self._dumps, self._loads = _FORMATS[serializer]
        else:
            self.kind = b'c'
            self._dumps, self._loads = serializer.dumps, serializer.loads
        self.name = serializer if isinstance(serializer, str) else 'custom'
        self._key = derive_key(secret, purpose)

    def _mac(self, body):
        return hmac.digest(self._key, body, 'sha256')

    def dumps(self, obj):
        """Return ``obj`` serialized and signed, as bytes."""
        payload = self._dumps(obj)
        if isinstance(payload, str):
            payload = payload.encode('utf-8')
        body = self.kind + payload
        return MAGIC + self._mac(body) + body

    def loads(self, data):
        """Return the value in ``data``; raise :class:`InvalidData` unless signed by us."""
        if isinstance(data, str):
            data = data.encode('latin-1')
        if (
            not isinstance(data, (bytes, bytearray, memoryview))
            or len(data) < _HEADER_SIZE
            or bytes(data[:3]) != MAGIC
        ):
            raise InvalidData('not a pyramid_beaker envelope')
        data = bytes(data)
        mac, body = data[3:_HEADER_SIZE - 1], data[_HEADER_SIZE - 1:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidData('bad signature')
        if body[:1] != self.kind:
            raise InvalidData('stored with another serializer')
        try:
            return self._loads(body[1:])
        except Exception as exc:  # a signed payload we cannot parse
            raise InvalidData('unreadable payload: %s' % exc) from exc


class CopyCodec:
    """In-process 'serializer' for memory stores: a private copy, no signing.

    JSON round trips keep memory sessions as strict as the server-side ones
    (a nested change needs ``changed()``); pickle copies anything.
    """

    def __init__(self, serializer):
        if isinstance(serializer, str):
            _, self.dumps, self.loads = _FORMATS[serializer]
        else:
            self.dumps, self.loads = serializer.dumps, serializer.loads
        self.name = serializer if isinstance(serializer, str) else 'custom'


def check_json(key, value):
    """Raise TypeError naming ``key`` when ``value`` cannot be stored as JSON."""
    try:
        json.dumps(value, separators=(',', ':'))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            'session key %r: %s; sessions store JSON (set '
            '"session.data_serializer = pickle" to store other types)'
            % (key, exc)
        ) from None
