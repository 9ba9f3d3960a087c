"""Client-side sessions: the whole session travels in the cookie.

The record is signed (HMAC-SHA256 with ``validate_key``, or ``secret``) and,
when ``encrypt_key`` is set, encrypted with AES-GCM from the ``cryptography``
package.  A cookie that fails either check reads as a new, empty session.
Cookies hold about 4 KB: saving a larger session raises ``ValueError``.
"""
import base64
import binascii
import hashlib
import os

from pyramid.exceptions import ConfigurationError

from ..codec import InvalidData, SignedCodec
from .base import Backend, SessionStore, log, pack_record, unpack_record

#: Largest cookie value we send; browsers keep at most 4096 bytes per cookie.
MAX_COOKIE_SIZE = 4000


def _aesgcm(encrypt_key, label='encrypt_key'):
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigurationError(
            '"%s" needs the cryptography package: '
            'pip install "pyramid_beaker[crypto]"' % label) from None
    return AESGCM(hashlib.sha256(encrypt_key.encode('utf-8')).digest())


def check(options, label):
    """An ``encrypt_key`` needs the cryptography package: say so at startup."""
    if options.get('encrypt_key'):
        _aesgcm(options['encrypt_key'], label('encrypt_key'))


class CookieSessionStore(SessionStore):
    """Encodes session records into cookie values and back."""

    name = 'cookie'
    client_side = True

    def __init__(self, options, codec):
        key = options['validate_key'] or options['secret']
        super().__init__(options, SignedCodec(options['data_serializer'], key, 'cookie',
                                              fallbacks=options['secret_fallbacks']))
        self.cipher = _aesgcm(options['encrypt_key']) if options['encrypt_key'] else None

    def dump_cookie(self, data, created, accessed):
        """Return the cookie value holding ``data``."""
        raw = self.codec.dumps(pack_record(data, created, accessed))
        if self.cipher is not None:
            nonce = os.urandom(12)
            raw = nonce + self.cipher.encrypt(nonce, raw, None)
        value = base64.urlsafe_b64encode(raw).rstrip(b'=').decode('ascii')
        if len(value) > MAX_COOKIE_SIZE:
            raise ValueError(
                'the session is too large for a cookie (%d bytes encoded, at '
                'most %d): store less or use a server-side session type'
                % (len(value), MAX_COOKIE_SIZE))
        return value

    def load_cookie(self, value):
        """Return the :class:`~.base.Record` in a cookie value, or None."""
        try:
            raw = base64.urlsafe_b64decode(value + '=' * (-len(value) % 4))
            if self.cipher is not None:
                raw = self._decrypt(raw)
            return unpack_record(*self.codec.loads_checked(raw))
        except (InvalidData, binascii.Error, ValueError) as exc:
            log.info('ignoring a session cookie that does not verify: %s', exc)
            return None

    def _decrypt(self, raw):
        from cryptography.exceptions import InvalidTag

        try:
            return self.cipher.decrypt(raw[:12], raw[12:], None)
        except InvalidTag:
            raise InvalidData('cannot decrypt the cookie') from None


#: Cookies hold sessions only: no cache regions.
BACKEND = Backend('cookie', session_store=CookieSessionStore, check=check)
