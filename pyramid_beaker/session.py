"""The session: a complete Pyramid ``ISession`` over a pyramid_beaker store.

The session loads lazily (``request.session`` alone does no I/O), records
which keys a request changed, and saves only those keys when the response
is made, as an atomic merge in the store.  A request that only reads does
not write, except to refresh the stored access time at most once per
``refresh_interval``; one that only sets keys does not load, where the
store can save them without (Redis).
"""
import datetime
import hmac
import logging
import re
import secrets
from typing import Any, Mapping

from pyramid.interfaces import ISession, ISessionFactory
from webob.cookies import parse_cookie
from zope.interface import implementer

from . import stores
from .codec import CopyCodec, InvalidData, SignedCodec, SignedFields, Signer, check_json, derive_key
from .settings import session_options_from_settings
from .stores.base import EXPIRY_KEY, SessionBackendError, now, own_lifetime

log = logging.getLogger('pyramid_beaker')

#: Stored lifetime of sessions that have no ``timeout``: 30 days idle.
DEFAULT_MAX_IDLE = 30 * 24 * 3600
#: Lifetime given to a cookie with ``cookie_expires = false``: 10 years.
_FOREVER = 10 * 365 * 24 * 3600
CSRF_KEY = '_csrft_'
FLASH_PREFIX = '_f_'
_MISSING = object()


_ID_COOKIE = re.compile('[0-9a-f]{32}\\.[0-9a-f]{32}')
# A Cookie header of plain ``name=value`` pairs: no quotes, escapes, commas
# or spaces but one after each ``;``.  webob's parser reads such a header as
# a split on ``;`` and the first ``=`` does, so it is read that way.
_PLAIN_COOKIES = re.compile(
    r"[0-9A-Za-z!#%&'*+\-.^_`|~]+=[0-9A-Za-z!#$%&'()*+\-./:<=>?@^_`{|}~]*"
    r"(?:; ?[0-9A-Za-z!#%&'*+\-.^_`|~]+=[0-9A-Za-z!#$%&'()*+\-./:<=>?@^_`{|}~]*)*")
# Names webob never reads as a cookie: attributes.
_ATTRIBUTE_NAMES = frozenset(
    ['expires', 'path', 'comment', 'domain', 'max-age', 'secure', 'httponly', 'samesite'])


def _new_id():
    return secrets.token_hex(16)


def cookie_value(environ, name):
    """Return the value the Cookie header gives for ``name``, or None.

    As with ``request.cookies``, the last cookie of that name wins.  The
    header is parsed here because ``request.cookies`` raises
    UnicodeDecodeError on any cookie that is not UTF-8, even another app's.
    A value that is not ASCII cannot be ours: it reads as ``''``.
    """
    header = environ.get('HTTP_COOKIE')
    if not header:
        return None
    if _PLAIN_COOKIES.fullmatch(header) and name.lower() not in _ATTRIBUTE_NAMES:
        found = None
        for pair in header.split(';'):
            key, _, value = pair.lstrip(' ').partition('=')
            if key == name:
                found = value
        return found
    try:
        wanted = name.encode('latin-1')
        found = None
        for key, value in parse_cookie(header):
            if key == wanted:
                found = value
    except (UnicodeError, ValueError):  # not a latin-1 WSGI string
        return ''
    if found is None:
        return None
    try:
        return found.decode('ascii')
    except UnicodeDecodeError:
        return ''


def refresh_interval(options):
    """Seconds between access-time refreshes by read-only requests.

    ``refresh_interval`` when set; otherwise a tenth of ``timeout`` (at
    most 5 minutes), or one day for sessions without a timeout.
    """
    if options['refresh_interval'] is not None:
        return options['refresh_interval']
    if options['timeout'] is None:
        return 24 * 3600
    return max(1, min(300, options['timeout'] // 10))


class IdCookie:
    """Signs and checks the session id carried in the cookie: ``id.mac``.

    Ids are signed with ``secret``; ``fallbacks`` (old secrets) still verify.
    """

    def __init__(self, secret, fallbacks=()):
        self._signer = Signer(derive_key(secret, 'session-id'))
        self._old_signers = [Signer(derive_key(old, 'session-id')) for old in fallbacks if old]

    def _mac(self, session_id, signer=None):
        return (signer or self._signer).digest(session_id.encode()).hex()[:32]

    def dumps(self, session_id):
        return '%s.%s' % (session_id, self._mac(session_id))

    def loads(self, value):
        """Return the id in a cookie value, or None when it is not ours."""
        return self.loads_checked(value)[0]

    def loads_checked(self, value):
        """Return ``(id or None, stale)``; stale: signed with an old secret."""
        if not _ID_COOKIE.fullmatch(value):
            return None, False
        session_id, mac = value[:32], value[33:]
        if hmac.compare_digest(mac, self._mac(session_id)):
            return session_id, False
        for signer in self._old_signers:
            if hmac.compare_digest(mac, self._mac(session_id, signer)):
                return session_id, True
        return None, False


def _value_check(serializer):
    """Return a function that rejects values ``serializer`` cannot store."""
    if serializer == 'json':
        return check_json
    dumps = CopyCodec(serializer).dumps

    def check(key, value):
        try:
            dumps(value)
        except Exception as exc:
            raise TypeError('session key %r: cannot be serialized: %s'
                            % (key, exc)) from None

    return check


@implementer(ISessionFactory)
class SessionFactory:
    """Makes a :class:`BeakerSession` per request; holds the store.

    Build it with :func:`BeakerSessionFactoryConfig` or
    :func:`session_factory_from_settings`.
    """

    def __init__(self, options):
        self.options = options
        self.backend, _ = stores.find_backend(options['type'])
        #: True when sessions live inside each process.
        self.process_local = self.backend.process_local_of(options['type'])
        if self.backend.signs_sessions:
            codec = SignedCodec(options['data_serializer'], options['secret'], 'session',
                                fallbacks=options['secret_fallbacks'],
                                encrypt_key=options['encrypt_key'])
        else:
            codec = CopyCodec(options['data_serializer'])
        self.store = self.backend.session_store(options, codec)
        #: Reads sessions Beaker wrote (``migrate_from = beaker``), or None.
        self.beaker_reader = None
        if options['migrate_from'] == 'beaker':
            from .migrate import BeakerReader

            self.beaker_reader = BeakerReader(options)
        self.client_side = self.store.client_side
        self.id_cookie = IdCookie(options['secret'], options['secret_fallbacks'])
        self.check_value = _value_check(options['data_serializer'])
        self.timeout = options['timeout']
        self.ttl = self.timeout or DEFAULT_MAX_IDLE
        self.refresh_interval = refresh_interval(options)
        self.track_access = options['save_accessed_time']
        self.cookie_name = options['key']
        self.cookie_on_exception = options['cookie_on_exception']
        self.constant_csrf_token = options['constant_csrf_token']
        self._cookie_args = self._cookie_arguments(options)
        #: A cookie with a lifetime is sent again when the session is refreshed.
        self.cookie_has_lifetime = 'max_age' in self._cookie_args

    @staticmethod
    def _cookie_arguments(options):
        args = {
            'path': options['cookie_path'],
            'domain': options['cookie_domain'],
            'secure': options['secure'],
            'httponly': options['httponly'],
            'samesite': options['samesite'],
        }
        expires = options['cookie_expires']
        if expires is False:
            args['max_age'] = _FOREVER
        elif isinstance(expires, datetime.datetime):
            args['expires'] = expires
        elif expires is not True:
            args['max_age'] = expires
        return args

    def __call__(self, request):
        return BeakerSession(request, self)

    def purge_expired(self, now=None, progress=None):
        """Delete stored sessions idle past ``timeout`` (or 30 days); return the count.

        For the file, dbm, memory and database stores; Redis and memcached
        expire sessions by themselves.  ``progress(done, total)`` is called
        now and then when given.
        """
        return self.store.purge_expired(self.ttl, now, progress=progress)

    def set_cookie(self, response, value, max_age=None):
        """Set the session cookie; ``max_age`` (a session's own expiry) wins."""
        args = self._cookie_args
        if max_age is not None:
            args = dict(args, max_age=max_age)
            args.pop('expires', None)
        response.set_cookie(self.cookie_name, value, **args)

    def delete_cookie(self, response):
        response.delete_cookie(self.cookie_name, path=self._cookie_args['path'],
                               domain=self._cookie_args['domain'])


@implementer(ISession)
class BeakerSession:
    """A Pyramid session backed by a pyramid_beaker store.

    Only the user's keys are visible through the dict API.  Mutations are
    tracked per key; call :meth:`changed` after changing a nested value in
    place.  :meth:`invalidate` deletes the stored data; :meth:`regenerate_id`
    keeps the data under a new id (use it at login, against fixation).
    """

    def __init__(self, request, factory):
        self._request = request
        self._factory = factory
        self._loaded = False
        self._error = None
        self._finished = False
        self._migrated = None  # the data of a Beaker session being migrated
        self._beaker_id = None  # its id in Beaker's store (server-side types)
        self._pending = None  # keys set before any load (see _set_unloaded)

    # -- loading ----------------------------------------------------------

    def _load(self):
        if self._error is not None:  # every use after a failed load fails alike
            raise self._error
        try:
            record = self._read()
        except SessionBackendError as exc:
            self._error = exc
            raise
        factory = self._factory
        self._loaded = True
        self._changed = {}
        self._deleted = set()
        self._touch = False
        self._id_dropped = False  # invalidate() or regenerate_id() ran
        self._expiry = None  # this session's own idle timeout (set_expiry)
        self._unread = None  # SignedFields: stored values not yet checked
        self._rewrites = set()  # keys found stale: signed anew at save
        current = now()
        if record is not None:
            try:
                expiry = self._stored_expiry(record.data)
            except InvalidData as exc:
                factory.store.delete(self._id)
                log.warning('deleted unreadable %s session %s...: %s',
                            factory.store.name, self._id[:8], exc)
                expiry = record = None
        if record is not None:
            if expiry is not None:
                self._expiry = own_lifetime({EXPIRY_KEY: expiry})
            timeout = self._expiry or factory.timeout
            if timeout is not None and record.accessed + timeout < current:
                if self._id is not None:
                    factory.store.delete(self._id)
                record = None
                self._expiry = None
        self._token = None if record is None else record.token  # handed back to save
        if record is None:
            self._id = None
            self._data = {}
            self._created = self._accessed = current
            self._new = True
            if self._migrated:  # a Beaker session: saved anew under a new id
                self._data = self._migrated
                self._changed = dict(self._migrated)
                self._new = False
        else:
            self._data = record.data
            if isinstance(record.data, SignedFields):
                self._data, self._unread = {}, record.data
            self._created = record.created
            self._accessed = record.accessed
            self._new = False
            interval = factory.refresh_interval
            if self._expiry is not None:
                interval = min(interval, max(1, min(300, self._expiry // 10)))
            self._touch = (factory.track_access
                           and current - record.accessed >= interval)
        if self._pending is None:
            self._request.add_response_callback(self._finish)
        if record is not None and record.stale:  # old secret: sign it all anew now
            self.changed()
            if self._expiry is not None:
                self._changed[EXPIRY_KEY] = self._expiry
        if self._pending:  # set before the load: applied now, in order
            for key, value in self._pending.items():
                self._put(key, value)
        self._pending = None

    def _stored_expiry(self, data):
        """Take the session's own timeout out of ``data``; None when it has none."""
        if not isinstance(data, SignedFields):
            return data.pop(EXPIRY_KEY, None)
        _, expiry, stale = data.take(EXPIRY_KEY)
        if stale:
            self._rewrites.add(EXPIRY_KEY)
        return expiry

    def _key(self, key):
        """Return the data, with ``key``'s stored value checked and parsed."""
        data = self._d
        if self._unread:
            try:
                found, value, stale = self._unread.take(key)
            except InvalidData as exc:
                return self._unreadable(exc)
            if found:
                data[key] = value
                if stale:
                    self._rewrites.add(key)
        return data

    def _all(self):
        """Return the data, with every stored value checked and parsed."""
        data = self._d
        if self._unread:
            try:
                values, stale = self._unread.take_all()
            except InvalidData as exc:
                return self._unreadable(exc)
            data.update(values)
            if stale:
                self._rewrites.update(values)
        return data

    def _unreadable(self, reason):
        """A stored value failed its check: delete the record and go on with a
        new session holding only what this request set.  Return its data."""
        factory = self._factory
        factory.store.delete(self._id)
        log.warning('deleted unreadable %s session %s...: %s',
                    factory.store.name, self._id[:8], reason)
        self._id = None
        self._new = True
        self._created = self._accessed = now()
        self._unread = None
        self._rewrites = set()
        self._deleted = set()
        self._touch = False
        if EXPIRY_KEY not in self._changed:
            self._expiry = None
        self._data = {key: value for key, value in self._changed.items() if key != EXPIRY_KEY}
        return self._data

    def _read_cookie(self):
        """Return the request's session cookie value, or None.

        Sets ``self._id`` (for server-side stores, the id when its signature
        verifies, else None), ``self._cookie_sent`` and ``self._cookie_stale``
        (the id was signed with an old secret).
        """
        factory = self._factory
        self._id = None
        self._cookie_stale = False
        value = cookie_value(self._request.environ, factory.cookie_name)
        self._cookie_sent = value is not None
        if value and not factory.client_side:
            self._id, self._cookie_stale = factory.id_cookie.loads_checked(value)
        return value

    def _read(self):
        """Return the record the request's cookie points to, or None."""
        factory = self._factory
        value = self._read_cookie()
        if not value:
            return None
        if factory.client_side:
            record = factory.store.load_cookie(value)
            if record is None and factory.beaker_reader is not None:
                _, self._migrated = factory.beaker_reader.read_cookie(value)
            return record
        if self._id is None:
            if factory.beaker_reader is not None:
                self._beaker_id, self._migrated = factory.beaker_reader.read_cookie(value)
            return None
        record = factory.store.load(self._id)
        if self._cookie_stale and record is not None:
            record = record._replace(stale=True)
        return record

    @property
    def _d(self):
        if not self._loaded:
            self._load()
        return self._data

    @property
    def new(self):
        """True when no stored session was loaded for this request."""
        self._d
        return self._new

    @property
    def created(self):
        """When the session was created (a Unix timestamp)."""
        self._d
        return self._created

    @property
    def accessed(self):
        """When the stored session was last recorded as accessed."""
        self._d
        return self._accessed

    @property
    def id(self):
        """The session id, or None for a new session not yet saved."""
        self._d
        return self._id

    # -- reading ----------------------------------------------------------

    def __getitem__(self, key):
        return self._key(key)[key]

    def get(self, key, default=None):
        return self._key(key).get(key, default)

    def __contains__(self, key):
        return key in self._key(key)

    def __iter__(self):
        return iter(list(self._all()))

    def __len__(self):
        return len(self._all())

    def keys(self):
        return self._all().keys()

    def values(self):
        return self._all().values()

    def items(self):
        return self._all().items()

    def __repr__(self):
        return '<%s %r>' % (type(self).__name__, self._all())

    # -- writing ----------------------------------------------------------

    def _set(self, key, value):
        if not isinstance(key, str) or key == EXPIRY_KEY:
            raise TypeError('session keys must be strings other than %r, not %r'
                            % (EXPIRY_KEY, key))
        self._factory.check_value(key, value)
        if self._loaded or not self._set_unloaded(key, value):
            self._put(key, value)

    def _set_unloaded(self, key, value):
        """Keep ``key`` pending, without loading, when the store can save it
        so (a request that only sets keys then makes one round trip).
        Return False when the session must be loaded first."""
        pending = self._pending
        if pending is None:
            store = self._factory.store
            if not store.saves_unloaded or self._error is not None:
                return False
            self._read_cookie()
            if self._id is None or self._cookie_stale:
                return False  # new, or signed anew: the usual path
            self._pending = pending = {}
            self._since = now()  # the record counts as read now
            self._request.add_response_callback(self._finish)
        pending[key] = value
        return True

    def _put(self, key, value):
        """Set ``key`` in the loaded session."""
        self._d[key] = value
        if self._unread:
            self._unread.discard(key)  # replaced: its stored value is not needed
        self._changed[key] = value
        self._deleted.discard(key)

    def _forget(self, key):
        self._changed.pop(key, None)
        self._deleted.add(key)

    def __setitem__(self, key, value):
        self._set(key, value)

    def __delitem__(self, key):
        del self._key(key)[key]
        self._forget(key)

    def setdefault(self, key, default=None):
        if key not in self._key(key):
            self._set(key, default)
        return self._data[key]

    def update(self, *args, **kw):
        for key, value in dict(*args, **kw).items():
            self._set(key, value)

    def pop(self, key, default=_MISSING):
        data = self._key(key)
        if key in data:
            self._forget(key)
            return data.pop(key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self):
        key, value = self._all().popitem()
        self._forget(key)
        return key, value

    def clear(self):
        for key in list(self._all()):
            self._forget(key)
        self._data.clear()

    def changed(self):
        """Save every key at the end of the request (after in-place changes)."""
        self._changed.update(self._all())

    def save(self):
        """Beaker's name for :meth:`changed`, kept for code written for 0.9."""
        self.changed()

    def set_expiry(self, seconds):
        """Give this session its own idle timeout, e.g. for "remember me".

        ``seconds`` (an int of at least 1, or a :class:`datetime.timedelta`)
        is stored with the session and sets the store's expiry and the
        cookie's ``Max-Age``; ``None`` returns to the factory's ``timeout``.
        """
        if isinstance(seconds, datetime.timedelta):
            seconds = int(seconds.total_seconds())
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)
                                    or seconds < 1):
            raise ValueError('set_expiry() takes a number of seconds (at least 1), '
                             'a timedelta or None, not %r' % (seconds,))
        self._d
        self._expiry = seconds
        if seconds is None:
            self._changed.pop(EXPIRY_KEY, None)
            self._deleted.add(EXPIRY_KEY)
        else:
            self._changed[EXPIRY_KEY] = seconds
            self._deleted.discard(EXPIRY_KEY)

    def get_expiry(self):
        """Seconds of inactivity after which this session expires, or None (never)."""
        self._d
        return self._expiry or self._factory.timeout

    def invalidate(self):
        """Delete the stored session now and start a new, empty one."""
        self._drop_id()
        self._expiry = None
        self._unread = None
        self._rewrites = set()
        self._data = {}
        self._changed = {}
        self._deleted = set()
        self._new = True
        self._created = self._accessed = now()
        self._touch = False

    def regenerate_id(self):
        """Keep the data but move it to a new id (call it at login)."""
        self._all()
        self._drop_id()
        self._changed = dict(self._data)
        if self._expiry is not None:
            self._changed[EXPIRY_KEY] = self._expiry
        self._deleted = set()

    def _drop_id(self):
        """Delete the stored record of the current id and forget the id."""
        self._d
        if self._id is not None:
            self._factory.store.delete(self._id)
        self._id = None
        self._id_dropped = True

    # -- flash messages and CSRF --------------------------------------------

    def flash(self, msg, queue='', allow_duplicate=True):
        storage = list(self.get(FLASH_PREFIX + queue, ()))
        if allow_duplicate or msg not in storage:
            storage.append(msg)
            self[FLASH_PREFIX + queue] = storage

    def pop_flash(self, queue=''):
        return self.pop(FLASH_PREFIX + queue, [])

    def peek_flash(self, queue=''):
        return list(self.get(FLASH_PREFIX + queue, []))

    def new_csrf_token(self):
        token = self._factory.constant_csrf_token or secrets.token_hex(20)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self):
        token = self.get(CSRF_KEY)
        if not token:
            token = self.new_csrf_token()
        return token

    # -- saving -------------------------------------------------------------

    def _finish(self, request, response):
        """Save what changed and set or clear the cookie (once per request).

        Runs from :func:`session_tween_factory` when the app includes
        pyramid_beaker (so a failed save reaches the exception views),
        else as a response callback.
        """
        if self._finished:
            return
        self._finished = True
        _vary_on_cookie(response)
        if request.exception is not None and not self._factory.cookie_on_exception:
            return
        if self._factory.client_side:
            self._finish_in_cookie(response)
        elif not self._loaded:
            self._finish_unloaded(response)
        else:
            self._finish_in_store(response)
            if self._beaker_id is not None:  # migrated (or logged out): once only
                self._factory.beaker_reader.delete(self._beaker_id)

    def _finish_in_cookie(self, response):
        """Client-side sessions: the cookie holds the whole session."""
        factory = self._factory
        if self._changed or self._deleted or self._touch:
            if self._data:
                data = self._data
                if self._expiry is not None:
                    data = dict(data, **{EXPIRY_KEY: self._expiry})
                factory.set_cookie(response, factory.store.dump_cookie(
                    data, self._created, now()), self._expiry)
            else:
                self._clear_old_cookie(response)
        elif self._id_dropped:
            self._clear_old_cookie(response)

    def _finish_in_store(self, response):
        """Server-side sessions: save the changed keys, or refresh the access time.

        Only a request that created a session creates its record: a save or
        refresh of a loaded session whose record has gone meanwhile (logged
        out elsewhere, expired) changes nothing and expires the cookie.  A
        session left empty is deleted.
        """
        factory = self._factory
        if self._rewrites:
            self._sign_anew()
        if self._changed or self._deleted:
            if self._emptied():  # emptied, or a new session that stayed empty
                if self._id is not None:
                    factory.store.delete(self._id)
                self._clear_old_cookie(response)
                return
            create = self._id is None
            if create:
                self._id = _new_id()
            saved = factory.store.save(
                self._id, self._changed, frozenset(self._deleted),
                self._created, now(), self._expiry or factory.ttl, create=create,
                token=None if create else self._token)
        elif self._touch:
            create = False
            saved = factory.store.touch(self._id, now(), self._expiry or factory.ttl,
                                        token=self._token)
        else:
            if self._id_dropped:
                self._clear_old_cookie(response)
            return
        if not saved:
            self._clear_old_cookie(response)
        elif create or not self._cookie_stays(self._expiry, EXPIRY_KEY in self._deleted):
            factory.set_cookie(response, factory.id_cookie.dumps(self._id), self._expiry)

    def _finish_unloaded(self, response):
        """A request that only set keys: save them without a load, in one
        round trip.  When the store cannot judge the record unread, load it
        (the pending keys are applied) and save as usual."""
        if self._error is not None:  # a load was tried, and failed
            return
        factory = self._factory
        try:
            saved, expiry = factory.store.save_unloaded(
                self._id, self._pending, self._since, now(), factory.timeout or 0, factory.ttl)
        except SessionBackendError as exc:
            self._error = exc  # every later use fails alike (an exception view's)
            raise
        if saved is None:
            self._load()
            if self._expiry is not None:  # saved anew, where the store can read it unloaded
                self._changed.setdefault(EXPIRY_KEY, self._expiry)
            self._finish_in_store(response)
        elif not saved:  # logged out while this request ran
            self._clear_old_cookie(response)
        elif not self._cookie_stays(expiry):
            factory.set_cookie(response, factory.id_cookie.dumps(self._id), expiry)

    def _cookie_stays(self, expiry, expiry_removed=False):
        """True when the browser's cookie for this stored session is right as
        it is: signed with ``secret``, and without a lifetime to slide (the
        factory's or the session's own ``expiry``), nor one this request
        removed."""
        return not (self._cookie_stale or self._factory.cookie_has_lifetime
                    or expiry is not None or expiry_removed)

    def _sign_anew(self):
        """Save again the values found signed with an old secret (or not
        encrypted as asked), unless this request changed them."""
        for key in self._rewrites:
            if key == EXPIRY_KEY:
                if self._expiry is not None:
                    self._changed.setdefault(key, self._expiry)
            elif key in self._data:
                self._changed.setdefault(key, self._data[key])

    def _emptied(self):
        """True when the session has no key left.  A request that set a key
        leaves one; otherwise every stored value is checked."""
        if len(self._changed) > (EXPIRY_KEY in self._changed):
            return False
        return not self._all()

    def _clear_old_cookie(self, response):
        """Expire the browser's cookie, if the request brought one."""
        if self._cookie_sent:
            self._factory.delete_cookie(response)


def _vary_on_cookie(response):
    """Add ``Cookie`` to the response's Vary values (shared caches must not mix users).

    Most responses have no Vary header yet: one is appended, without
    parsing and serializing the header list through ``response.vary``.
    """
    if not any(name.lower() == 'vary' for name, _ in response.headerlist):
        response.headerlist.append(('Vary', 'Cookie'))
        return
    vary = response.vary or ()
    if not any(value.lower() == 'cookie' for value in vary):
        response.vary = tuple(vary) + ('Cookie',)


def session_tween_factory(handler, registry):
    """Tween that finishes the session inside the tween chain.

    Added over Pyramid's exception-view tween by ``includeme``: a store
    that fails while saving raises :class:`SessionBackendError`, which is
    rendered by the app's exception view for it (as for a failed load)
    instead of reaching the WSGI server.
    """

    def session_tween(request):
        response = handler(request)
        session = request.__dict__.get('session')  # set once request.session ran
        if isinstance(session, BeakerSession) and not session._finished \
                and (session._loaded or session._pending is not None):
            try:
                session._finish(request, response)
            except SessionBackendError:
                response = request.invoke_exception_view(reraise=True)
        return response

    return session_tween


def BeakerSessionFactoryConfig(**options: Any) -> SessionFactory:
    """Return a Pyramid session factory built from Beaker session options.

    Options are Beaker's session options (``type``, ``data_dir``,
    ``lock_dir``, ``url``, ``key``, ``secret``, ``timeout``,
    ``cookie_expires``, ...) plus ``cookie_on_exception``,
    ``constant_csrf_token`` and ``refresh_interval``.  Strings are coerced as
    from an ini file; typed values pass through.  Bad values raise
    :class:`pyramid.exceptions.ConfigurationError` naming the option::

        config.set_session_factory(BeakerSessionFactoryConfig(
            type='file', data_dir='/var/app/sessions', key='app',
            secret='...'))
    """
    return SessionFactory(session_options_from_settings({}, '', overrides=options))


def session_factory_from_settings(settings: Mapping[str, Any],
                                  prefix: str = 'session.') -> SessionFactory:
    """Return a session factory from settings under ``prefix``.

    With the default prefix, ``beaker.session.*`` keys are read too
    (``session.*`` wins).  Errors name the full setting key.
    """
    return SessionFactory(session_options_from_settings(settings, prefix))
