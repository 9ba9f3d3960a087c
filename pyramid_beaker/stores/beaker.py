"""Sessions in Beaker's own namespace classes: the ``beaker:<type>`` opt-in.

``session.type = beaker:ext:mongodb`` (or any name in ``beaker.cache.clsmap``)
keeps sessions in Beaker's class of that name, for backends this package
does not provide.  The record inside is still our signed envelope, but
Beaker's file, dbm, Redis, memcached and database classes unpickle their own
container *before* anything can be verified: only use this where nobody
else can write to the store.  Saves run under the class's write lock, which
spans processes only where Beaker's lock does.
"""
from beaker.cache import clsmap

from .base import SessionStore, merge, pack_record

ENTRY_POINT = None
NAMESPACE_MANAGER = None
#: Options handed to Beaker's class as they are.
PASSED_OPTIONS = ('data_dir', 'lock_dir', 'url')


class BeakerNamespaceSessionStore(SessionStore):
    """One Beaker namespace per session id, the record under ``'session'``."""

    name = 'beaker'

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self.beaker_type = options['type'].split(':', 1)[1]
        self.name = 'beaker:' + self.beaker_type
        self.namespace_class = clsmap[self.beaker_type]
        self.namespace_args = {
            name: options[name] for name in PASSED_OPTIONS if options.get(name)}
        self.namespace_args.update(
            (name, value) for name, value in options.items() if name.startswith('sa.'))

    def _namespace(self, session_id, ttl=None):
        args = dict(self.namespace_args)
        if ttl is not None:
            args['timeout'] = ttl
        return self.namespace_class(session_id, digest_filenames=False, **args)

    def load(self, session_id):
        namespace = self._namespace(session_id)
        namespace.acquire_read_lock()
        try:
            raw = namespace['session'] if 'session' in namespace else None
        finally:
            namespace.release_read_lock()
        return None if raw is None else self._decode(session_id, raw)

    def save(self, session_id, changed, deleted, created, accessed, ttl):
        namespace = self._namespace(session_id, ttl)
        namespace.acquire_write_lock()
        try:
            raw = namespace['session'] if 'session' in namespace else None
            record = None if raw is None else self._decode(session_id, raw)
            data = {} if record is None else record.data
            if record is not None:
                created = record.created
            merge(data, changed, deleted)
            namespace['session'] = self.codec.dumps(pack_record(data, created, accessed))
        finally:
            namespace.release_write_lock()

    def touch(self, session_id, accessed, ttl):
        self.save(session_id, {}, (), accessed, accessed, ttl)

    def delete(self, session_id):
        namespace = self._namespace(session_id)
        namespace.acquire_write_lock()
        try:
            if 'session' in namespace:
                del namespace['session']
        finally:
            namespace.release_write_lock()


SESSION_STORE = BeakerNamespaceSessionStore
OPTIONS = {}
