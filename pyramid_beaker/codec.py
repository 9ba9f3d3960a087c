"""Serializers for stored data: JSON or pickle inside a signed envelope.

Everything a server-side store writes goes through a codec made here.  The
envelope is ``b'PB1' + kind + mac + payload``: ``kind`` is one byte naming the
payload format and ``mac`` is an HMAC-SHA256 over ``kind + payload``.  The MAC
is checked in constant time before the payload is parsed, so bytes that the
app did not write itself (a planted pickle, a record written by Beaker's own
classes, a truncated file) are rejected and never unpickled.  With an
``encrypt_key``, ``payload`` is ``nonce + AES-GCM ciphertext`` and ``kind`` is
upper case; old secrets may be given to verify what they signed.
"""
import hashlib
import hmac
import json
import os
import pickle
from collections.abc import Mapping

from pyramid.exceptions import ConfigurationError

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


class Signer:
    """HMAC-SHA256 under one key, the same MACs as :func:`hmac.digest`.

    The hashes of the padded key are computed once; each MAC then only
    copies them (half the work of ``hmac.digest``, which starts afresh).
    """

    def __init__(self, key):
        if len(key) > 64:  # RFC 2104: keys longer than a block are hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b'\0')
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def digest(self, message):
        """Return the 32-byte MAC of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_JSON_ENCODER = json.JSONEncoder(separators=(',', ':'), ensure_ascii=False)
_JSON_DECODER = json.JSONDecoder()


def _json_dumps(obj):
    return _JSON_ENCODER.encode(obj).encode()


def _json_loads(payload):
    text = payload.decode('utf-8')
    value, end = _JSON_DECODER.raw_decode(text)
    if end != len(text):
        return json.loads(text)  # trailing text: let json say what is wrong
    return value


def _pickle_dumps(obj):
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


_FORMATS = {
    'json': (b'j', _json_dumps, _json_loads),
    'pickle': (b'p', _pickle_dumps, pickle.loads),
}


class SignedCodec:
    """Dump and load values in the signed envelope.

    ``serializer`` is ``'json'``, ``'pickle'`` or an object with ``dumps`` and
    ``loads`` methods (its payload is signed like the built-in ones).
    Values are signed with ``secret``; ``fallbacks`` (old secrets) are only
    used to verify, so a secret can be rotated without losing what is
    stored.  With ``encrypt_key`` the payload is encrypted with AES-GCM
    before it is signed (its ``kind`` byte is then upper case).
    """

    def __init__(self, serializer, secret, purpose, fallbacks=(), encrypt_key=None):
        if not secret:
            raise ValueError('a signed codec needs a secret')
        if isinstance(serializer, str):
            self.kind, self._dumps, self._loads = _FORMATS[serializer]
        else:
            self.kind = b'c'
            self._dumps, self._loads = serializer.dumps, serializer.loads
        self.name = serializer if isinstance(serializer, str) else 'custom'
        self._signer = Signer(derive_key(secret, purpose))
        self._old_signers = [Signer(derive_key(old, purpose)) for old in fallbacks if old]
        self._cipher = make_cipher(encrypt_key, purpose) if encrypt_key else None
        self._sealed_kind = self.kind.upper()

    def dumps(self, obj):
        """Return ``obj`` serialized (encrypted if asked) and signed, as bytes."""
        payload = self._dumps(obj)
        if isinstance(payload, str):
            payload = payload.encode('utf-8')
        if self._cipher is None:
            body = self.kind + payload
        else:
            nonce = os.urandom(12)
            body = self._sealed_kind + nonce + self._cipher.encrypt(nonce, payload, None)
        return MAGIC + self._signer.digest(body) + body

    def loads(self, data):
        """Return the value in ``data``; raise :class:`InvalidData` unless signed by us."""
        return self.loads_checked(data)[0]

    def loads_checked(self, data):
        """Return ``(value, stale)``; ``stale`` is True when ``data`` should be
        written again: signed with an old secret, or not encrypted as asked."""
        payload, stale = self._payload(data)
        return self._parse(payload), stale

    def loads_all_checked(self, datas):
        """Return ``(values, stale)`` for the envelopes ``datas``: a list, and
        True when any of them should be written again.

        Each envelope is checked as :meth:`loads_checked` does; JSON payloads
        are then parsed together, in one call of the parser (a session of
        many keys costs one parse, not one per key).
        """
        payloads, stale = [], False
        for data in datas:
            payload, old = self._payload(data)
            payloads.append(payload)
            stale = stale or old
        if self.kind != b'j' or len(payloads) < 2:
            return [self._parse(payload) for payload in payloads], stale
        return self._parse(b'[' + b','.join(payloads) + b']'), stale

    def _payload(self, data):
        """Return ``(payload, stale)``: the checked (and decrypted) payload."""
        if type(data) is not bytes:
            data = _as_bytes(data)
        if len(data) < _HEADER_SIZE or not data.startswith(MAGIC):
            raise InvalidData('not a pyramid_beaker envelope')
        mac, body = data[3:_HEADER_SIZE - 1], data[_HEADER_SIZE - 1:]
        stale = False
        if not hmac.compare_digest(mac, self._signer.digest(body)):
            if not any(hmac.compare_digest(mac, signer.digest(body))
                       for signer in self._old_signers):
                raise InvalidData('bad signature')
            stale = True
        kind = data[_HEADER_SIZE - 1:_HEADER_SIZE]
        if kind == self.kind:
            return data[_HEADER_SIZE:], stale or self._cipher is not None
        if kind == self._sealed_kind:
            return self._open(data[_HEADER_SIZE:]), stale
        raise InvalidData('stored with another serializer')

    def _parse(self, payload):
        try:
            return self._loads(payload)
        except Exception as exc:  # a signed payload we cannot parse
            raise InvalidData('unreadable payload: %s' % exc) from exc

    #: The public names of the two halves of :meth:`loads_checked`.
    payload_checked = _payload
    parse = _parse

    def _open(self, sealed):
        if self._cipher is None:
            raise InvalidData('encrypted, and no "encrypt_key" is set')
        from cryptography.exceptions import InvalidTag

        try:
            return self._cipher.decrypt(sealed[:12], sealed[12:], None)
        except InvalidTag:
            raise InvalidData('cannot decrypt: another "encrypt_key"?') from None


class SignedFields(Mapping):
    """A stored session's values as signed envelopes, each checked and parsed
    on first use.

    Stores that keep every key of a session apart (Redis) load this in
    place of a dict, so a request verifies only the keys it uses.
    ``envelopes`` maps stored names to envelopes; :meth:`name` and
    :meth:`key` translate between names and keys.  Reading it as a mapping
    checks what it reads and raises :class:`InvalidData` for anything that
    does not verify.  The session takes values out with :meth:`take`,
    :meth:`take_all` and :meth:`discard`.
    """

    def __init__(self, envelopes, codec):
        self._envelopes = envelopes
        self._codec = codec

    def name(self, key):
        """The stored name of ``key``, or None when no stored name can be it."""
        return key

    def key(self, name):
        """The key stored as ``name``; InvalidData when the name is not a key's."""
        return name

    def take(self, key):
        """Remove ``key`` and return ``(found, value, stale)``.

        ``stale``: signed with an old secret or not encrypted as asked.
        """
        name = self.name(key)
        envelope = None if name is None else self._envelopes.pop(name, None)
        if envelope is None:
            return False, None, False
        value, stale = self._codec.loads_checked(envelope)
        return True, value, stale

    def take_all(self):
        """Remove every key left and return ``({key: value}, stale)``."""
        envelopes, self._envelopes = self._envelopes, {}
        keys = [self.key(name) for name in envelopes]
        values, stale = self._codec.loads_all_checked(envelopes.values())
        return dict(zip(keys, values)), stale

    def discard(self, key):
        """Forget ``key``'s envelope unread (the request set or deleted it)."""
        name = self.name(key)
        if name is not None:
            self._envelopes.pop(name, None)

    def __bool__(self):
        return bool(self._envelopes)

    def __len__(self):
        return len(self._envelopes)

    def __iter__(self):
        return iter([self.key(name) for name in self._envelopes])

    def __getitem__(self, key):
        name = self.name(key)
        if name is None or name not in self._envelopes:
            raise KeyError(key)
        return self._codec.loads(self._envelopes[name])


def _as_bytes(data):
    """Stored data as bytes (a latin-1 str as some drivers give); InvalidData if neither."""
    if isinstance(data, str):
        return data.encode('latin-1')
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InvalidData('not a pyramid_beaker envelope')


def make_cipher(encrypt_key, purpose):
    """Return an AES-256-GCM cipher keyed from ``encrypt_key`` for ``purpose``."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigurationError(
            '"encrypt_key" needs the cryptography package: '
            'pip install "pyramid_beaker[crypto]"') from None
    return AESGCM(derive_key(encrypt_key, purpose + '-encryption'))


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
        _json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            'session key %r: %s; sessions store JSON (set '
            '"session.data_serializer = pickle" to store other types)'
            % (key, exc)
        ) from None
