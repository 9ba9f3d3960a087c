"""Sessions in Beaker's own namespace classes: the ``beaker:<type>`` opt-in.

``session.type = beaker:ext:mongodb`` (or any name in ``beaker.cache.clsmap``)
keeps sessions in Beaker's class of that name, for backends this package
does not provide.  The record inside is still our signed envelope, but
Beaker's file, dbm, Redis, memcached and database classes unpickle their own
container *before* anything can be verified: only use this where nobody
else can write to the store.  Saves run under the class's write lock, which
spans processes only where Beaker's lock does.
"""
import inspect
import sys

from beaker.cache import clsmap
from beaker.container import NamespaceManager
from beaker.exceptions import InvalidCacheBackendError
from pyramid.exceptions import ConfigurationError

from .base import Backend, SessionStore, merge, pack_record

#: The type-name prefix that opts into Beaker's own classes.
PREFIX = 'beaker:'
#: Options handed to Beaker's class as they are.
PASSED_OPTIONS = ('data_dir', 'lock_dir', 'url', 'urls')


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

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        namespace = self._namespace(session_id, ttl)
        namespace.acquire_write_lock()
        try:
            raw = namespace['session'] if 'session' in namespace else None
            record = None if raw is None else self._decode(session_id, raw)
            if record is None and not create:
                return False
            data = {} if record is None else record.data
            if record is not None:
                created = record.created
            merge(data, changed, deleted)
            namespace['session'] = self.codec.dumps(pack_record(data, created, accessed))
            return True
        finally:
            namespace.release_write_lock()

    def touch(self, session_id, accessed, ttl, token=None):
        return self.save(session_id, {}, (), accessed, accessed, ttl, create=False)

    def delete(self, session_id):
        namespace = self._namespace(session_id)
        namespace.acquire_write_lock()
        try:
            if 'session' in namespace:
                del namespace['session']
        finally:
            namespace.release_write_lock()


def _check_driver(cls, options):
    """Raise when the driver of Beaker's class ``cls`` is missing.

    Beaker's classes check in three ways: ``_init_dependencies()`` (the
    database ones), a module global left None (Redis, MongoDB), and a client
    library loaded in ``__init__`` (memcached).
    """
    cls._init_dependencies()
    module = sys.modules.get(cls.__module__)
    for driver in ('redis', 'pymongo'):
        if getattr(module, driver, False) is None:
            raise ImportError('%s needs %s, which is not installed' % (cls.__name__, driver))
    load_client = getattr(module, '_load_client', None)
    if load_client is not None:
        load_client(options.get('memcache_module', 'auto'))


def as_given(value, label):
    """Options for Beaker's classes go to them unchanged."""
    return value


class BeakerBackend(Backend):
    """``beaker:<type>``: any class in Beaker's registry, for sessions and regions.

    Where data is kept follows our backend of the same type name
    (``beaker:file`` needs ``data_dir`` like ``file``).  Beaker's classes
    do not sign what they store: cache regions take no ``secret``.
    """

    open_options = True
    display_name = PREFIX + '<beaker type>'

    def __init__(self):
        super().__init__(
            PREFIX.rstrip(':'),
            session_store=BeakerNamespaceSessionStore,
            namespace_manager=NamespaceManager,  # Beaker's: see beaker_type
            signs_entries=False,
            options={'sa.': as_given})

    def type_name(self, name):
        """Claim ``beaker:<type>`` when Beaker knows ``<type>``."""
        if not name.startswith(PREFIX):
            return None
        try:
            found = clsmap[name[len(PREFIX):]]
        except KeyError:
            from . import UnknownType

            raise UnknownType(name, "one of Beaker's types after %r (its "
                              'driver must be installed)' % PREFIX) from None
        if isinstance(found, Exception):  # Beaker's marker for a missing driver
            from . import BackendUnavailable

            raise BackendUnavailable(str(found))
        return name

    def beaker_type(self, type_name):
        return type_name[len(PREFIX):]

    def check(self, options, type_name, label):
        """Also ask Beaker's class whether its driver is installed."""
        super().check(options, type_name, label)
        cls = clsmap[self.beaker_type(type_name)]
        try:
            _check_driver(cls, options)
        except (InvalidCacheBackendError, ImportError, RuntimeError) as exc:
            raise ConfigurationError('"%s" = %s cannot be used: %s'
                                     % (label('type'), type_name, exc)) from None
        # Beaker's Redis Cluster class takes its startup nodes as ``urls``.
        wanted = inspect.signature(cls.__init__).parameters
        if 'urls' in wanted and 'url' not in wanted and options.get('url'):
            options.setdefault('urls', options.pop('url'))

    def _ours(self, type_name):
        """Our backend of the same type name, or None."""
        from . import find_backend

        try:
            return find_backend(self.beaker_type(type_name))[0]
        except LookupError:
            return None

    def location_of(self, type_name):
        ours = self._ours(type_name)
        return ours.location[:1] if ours is not None else ()

    def process_local_of(self, type_name):
        ours = self._ours(type_name)
        return ours is not None and ours.process_local


BACKEND = BeakerBackend()
