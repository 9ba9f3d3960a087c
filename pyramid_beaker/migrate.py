"""Reading sessions that Beaker (pyramid_beaker 0.9) wrote: ``migrate_from = beaker``.

Beaker's cookie carries ``HMAC-SHA1(secret, id) + id``; its stores keep a
pickle (file, dbm, Redis) around the session, itself a pickle of the session
dict, base64-encoded.  Nothing here runs what it reads: pickles go through
:class:`RestrictedUnpickler`, which builds only plain containers and scalars
(dict, list, tuple, set, str, bytes, int, float, bool, None, datetime), and
the result is checked again.  Anything else reads as no session.  Once a
session is migrated, Beaker's record of it is deleted, so its old cookie
cannot bring it back.
"""
import base64
import binascii
import codecs
import datetime
import dbm
import hmac
import io
import json
import logging
import os
import pickle
import re

log = logging.getLogger('pyramid_beaker')

#: Beaker's session cookie: 40 hex digits of signature, then the id.
_BEAKER_COOKIE = re.compile('([0-9a-f]{40})([0-9a-f]{32})')
_PLAIN = (str, bytes, int, float, bool, type(None),
          datetime.datetime, datetime.date, datetime.time, datetime.timedelta)
_ALLOWED = {
    ('datetime', 'datetime'): datetime.datetime,
    ('datetime', 'date'): datetime.date,
    ('datetime', 'time'): datetime.time,
    ('datetime', 'timedelta'): datetime.timedelta,
    ('datetime', 'timezone'): datetime.timezone,
}
#: Beaker's bookkeeping keys inside the session dict.
_BOOKKEEPING = ('_accessed_time', '_creation_time', '_domain', '_path', '_id',
                '_expires')


class NotPlainData(pickle.UnpicklingError):
    """A pickle that names anything but plain containers, scalars and datetimes."""


#: What reading an old session may raise: the session is then not migrated.
_READ_ERRORS = (NotPlainData, OSError, ValueError) + tuple(dbm.error)


def _latin1_bytes(text, encoding='latin1'):
    """What protocol-2 pickles call to make bytes; only latin-1 is accepted."""
    if codecs.lookup(encoding).name != 'iso8859-1':
        raise NotPlainData('bytes in encoding %r' % encoding)
    return text.encode('latin-1')


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that finds no class or function but datetime's types."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if (module, name) == ('_codecs', 'encode'):
            return _latin1_bytes
        raise NotPlainData('%s.%s is not allowed' % (module, name))


def _check_plain(value, depth=0):
    if depth > 50:
        raise NotPlainData('nested too deep')
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1)
            _check_plain(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_plain(item, depth + 1)
    elif not isinstance(value, _PLAIN):
        raise NotPlainData('%s is not plain data' % type(value).__name__)
    return value


def restricted_loads(data):
    """Unpickle ``data`` building only plain data; raise NotPlainData otherwise."""
    try:
        return _check_plain(RestrictedUnpickler(io.BytesIO(data)).load())
    except NotPlainData:
        raise
    except Exception as exc:  # truncated or malformed pickles
        raise NotPlainData('unreadable pickle: %s' % exc) from exc


def beaker_cookie_id(value, secret):
    """Return the session id in a cookie value Beaker signed with ``secret``, or None."""
    found = _BEAKER_COOKIE.fullmatch(value.strip('"'))
    if found is None:
        return None
    signature, session_id = found.groups()
    expected = hmac.new(secret.encode('utf-8'), session_id.encode(), 'sha1').hexdigest()
    return session_id if hmac.compare_digest(signature, expected) else None


def session_from_payload(payload):
    """Return the user data of a Beaker session payload (base64 of a pickle or JSON)."""
    try:
        raw = base64.b64decode(payload, validate=False)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise NotPlainData('not base64: %s' % exc) from exc
    if raw[:1] in (b'{', b'['):
        data = json.loads(raw.decode('utf-8'))
    else:
        data = restricted_loads(raw)
    if not isinstance(data, dict):
        raise NotPlainData('a session is a dict, not %s' % type(data).__name__)
    return {key: value for key, value in data.items()
            if isinstance(key, str) and key not in _BOOKKEEPING}


class BeakerReader:
    """Reads one session Beaker's store of the same ``type`` wrote."""

    def __init__(self, options):
        self.options = options
        self.type = options['type']
        self.secret = options['secret']

    def read_cookie(self, value):
        """Return ``(id, data)`` for a cookie value Beaker made, or ``(None, None)``.

        For server-side types the cookie carries Beaker's signed id; for
        ``cookie`` it carries the session itself, signed with
        ``validate_key`` (or ``secret``), and the id is None.
        """
        if self.type == 'cookie':
            return None, self._read_cookie_session(value)
        session_id = beaker_cookie_id(value, self.secret)
        if session_id is None:
            return None, None
        data = self.read(session_id)
        return (None, None) if data is None else (session_id, data)

    def delete(self, session_id):
        """Delete what Beaker stored for ``session_id`` (once it is migrated).

        A store fault is logged, not raised: the migrated session is saved
        already.
        """
        try:
            self._delete(session_id)
        except Exception as exc:  # any driver's fault: the request goes on
            log.warning('could not delete migrated Beaker session %s...: %s',
                        session_id[:8], exc)

    def _delete(self, session_id):
        if self.type == 'file':
            path = _beaker_path(self.options['data_dir'], 'container_file', session_id, '.cache')
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        elif self.type == 'dbm':
            path = _beaker_path(self.options['data_dir'], 'container_dbm', session_id, '.dbm')
            if dbm.whichdb(path) is not None:
                with dbm.open(path, 'w') as db:
                    if b'session' in db:
                        del db[b'session']
        elif self.type == 'ext:redis':
            import redis

            client = redis.Redis.from_url(self.options['url'], socket_timeout=5)
            try:
                client.delete('beaker_cache:%s:session' % session_id)
            finally:
                client.close()
        elif self.type == 'ext:memcached':
            client = self._memcached_client()
            try:
                client.delete(session_id + '_session', noreply=False)
            finally:
                client.close()
        elif self.type == 'ext:database':
            self._database_delete(session_id)

    def _read_cookie_session(self, value):
        value = value.strip('"')
        signature, payload = value[:40], value[40:]
        key = (self.options.get('validate_key') or self.secret).encode('utf-8')
        expected = hmac.new(key, payload.encode('utf-8'), 'sha1').hexdigest()
        if not payload or not hmac.compare_digest(signature, expected):
            return None
        try:
            return session_from_payload(payload)
        except (NotPlainData, ValueError) as exc:
            log.warning('not migrating a Beaker cookie session: %s', exc)
            return None

    def read(self, session_id):
        """Return the session dict Beaker stored for ``session_id``, or None."""
        try:
            container = self._container(session_id)
            if container is None:
                return None
            payload = container.get('session') if isinstance(container, dict) else container
            if payload is None:
                return None
            return session_from_payload(payload)
        except _READ_ERRORS as exc:
            log.warning('not migrating Beaker session %s...: %s', session_id[:8], exc)
            return None

    def _container(self, session_id):
        if self.type == 'file':
            path = _beaker_path(self.options['data_dir'], 'container_file', session_id, '.cache')
            try:
                with open(path, 'rb') as f:
                    return restricted_loads(f.read())
            except FileNotFoundError:
                return None
        if self.type == 'dbm':
            path = _beaker_path(self.options['data_dir'], 'container_dbm', session_id, '.dbm')
            if dbm.whichdb(path) is None:
                return None
            with dbm.open(path, 'r') as db:
                raw = db.get(b'session')
            return None if raw is None else restricted_loads(raw)
        if self.type == 'ext:redis':
            import redis

            client = redis.Redis.from_url(self.options['url'], socket_timeout=5)
            try:
                raw = client.get('beaker_cache:%s:session' % session_id)
            finally:
                client.close()
            return None if raw is None else restricted_loads(raw)
        if self.type == 'ext:memcached':
            return self._memcached_payload(session_id)
        if self.type == 'ext:database':
            return self._database_container(session_id)
        return None

    def _memcached_client(self):
        from pymemcache.client.base import Client

        from .coerce import as_host_port

        host, port = as_host_port(self.options['url'].split()[0].split(',')[0],
                                  'url', 11211)
        return Client((host, port), timeout=5, connect_timeout=5)

    def _memcached_payload(self, session_id):
        """Beaker's memcached item ``<id>_session`` holds the payload itself."""
        client = self._memcached_client()
        try:
            return client.get(session_id + '_session')
        finally:
            client.close()

    def _database_container(self, session_id):
        """Beaker's table (``migrate_table_name``, default ``beaker_cache``):
        one row per session, a pickled ``{'session': payload}`` in ``data``."""
        import sqlalchemy as sa

        table = self._beaker_table()
        engine = self.options.get('bind') or sa.create_engine(self.options['url'])
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.select(table.c.data).where(
                    table.c.namespace == session_id)).first()
        except sa.exc.DBAPIError as exc:
            raise OSError('cannot read Beaker\'s table: %s' % exc.orig) from exc
        finally:
            if self.options.get('bind') is None:
                engine.dispose()
        return None if row is None else restricted_loads(bytes(row.data))

    def _database_delete(self, session_id):
        import sqlalchemy as sa

        table = self._beaker_table()
        engine = self.options.get('bind') or sa.create_engine(self.options['url'])
        try:
            with engine.begin() as conn:
                conn.execute(sa.delete(table).where(table.c.namespace == session_id))
        finally:
            if self.options.get('bind') is None:
                engine.dispose()

    def _beaker_table(self):
        import sqlalchemy as sa

        return sa.table(self.options.get('migrate_table_name') or 'beaker_cache',
                        sa.column('namespace'), sa.column('data'))


def _beaker_path(data_dir, container, session_id, extension):
    """The file Beaker's ``container`` keeps for ``session_id``: ``<data_dir>/
    <container>/<id[:1]>/<id[:2]>/<id><extension>`` (its digest_filenames off)."""
    return os.path.join(data_dir, container, session_id[:1], session_id[:2],
                        session_id + extension)
