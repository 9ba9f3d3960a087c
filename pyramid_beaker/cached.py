"""``@cached_region``: keep a function's or a view's results in a cache region.

The decorator only marks the function.  ``config.scan()`` finds it (venusian
category ``'pyramid'``) and calls :func:`add_cached_function`, whose action
binds it, at commit, to the region of that name in the app being
configured.  Each call then looks up the binding of the current app, so two
apps in one process each use their own region.  A function no app has
bound runs uncached.

This module holds the decorator, the per-app :class:`Binding` and the
caching of plain functions and methods; what is particular to views (their
keys, and what is stored and replayed for them) is in
:mod:`pyramid_beaker.cached_views`.
"""
import functools
import inspect
import itertools
import logging
import time

import venusian
from pyramid.exceptions import ConfigurationError
from pyramid.threadlocal import get_current_registry
from pyramid.threadlocal import manager as threadlocals

from .cache import get_region
from .keys import KeyMaker, fit

log = logging.getLogger('pyramid_beaker')

#: Registry attribute holding that app's bindings: ``{CachedFunction: Binding}``.
_BINDINGS = 'pyramid_beaker_cached_functions'
#: Storage types that live in this process: their entries are kept per app.
PROCESS_LOCAL_TYPES = frozenset(('pyramid_beaker.memory', 'memory'))
#: Types whose ``get_entry`` drops entries older than their stored expiry.
#: With per-app namespaces, that is this app's ``expire``: no need to check.
SELF_EXPIRING_TYPES = frozenset(('pyramid_beaker.memory',))
#: A binding logs backend errors at most this often (seconds).
WARN_INTERVAL = 60.0
#: Returned as the stored form of a result that must not be stored.
NOT_STORED = object()
_VIEW_SHAPES = frozenset(('view', 'context view', 'view method'))
_app_numbers = itertools.count(1)
_NO_BINDINGS = {}


class _AppBindings(dict):
    """One app's bindings, with a number unique in this process."""

    def __init__(self):
        super().__init__()
        self.number = next(_app_numbers)


class _BeakerManager:
    """Gives one of Beaker's own namespace managers our fast-path methods."""

    def __init__(self, manager):
        self.manager = manager

    def get_entry(self, key):
        manager = self.manager
        manager.acquire_read_lock()
        try:
            return manager[key] if key in manager else None
        finally:
            manager.release_read_lock()

    def set_entry(self, key, entry, expiretime=None):
        manager = self.manager
        manager.acquire_write_lock()
        try:
            manager.set_value(key, entry, expiretime)
        finally:
            manager.release_write_lock()

    def __delitem__(self, key):
        manager = self.manager
        manager.acquire_write_lock()
        try:
            if key in manager:
                del manager[key]
        finally:
            manager.release_write_lock()

    def get_creation_lock(self, key):
        return self.manager.get_creation_lock(key)


class Binding:
    """A decorated function bound to one app's region.

    Reads, writes and locks that fail are logged (each kind at most once
    per :data:`WARN_INTERVAL`) and the value is computed without the cache.
    """

    def __init__(self, cached, region, namespace):
        self.cached = cached
        self.region = region
        self.namespace = namespace
        self.expire = region.expire
        #: False when nothing can be stale on read (see SELF_EXPIRING_TYPES).
        self.check_age = (region.expire is not None and
                          region.options.get('type') not in SELF_EXPIRING_TYPES)
        self.enabled = region.enabled
        self.key_length = region.key_length
        manager = region.namespace_manager(namespace)
        if not hasattr(manager, 'get_entry'):
            manager = _BeakerManager(manager)
        self.manager = manager
        self.get_entry = manager.get_entry
        self._warned_at = {}  # action -> time.monotonic() of its last warning

    def warn(self, action, exc):
        current = time.monotonic()
        last = self._warned_at.get(action)
        if last is None or current - last >= WARN_INTERVAL:
            self._warned_at[action] = current
            log.warning('cache region %r could not %s an entry of %s (%s: %s); '
                        'computing without the cache', self.region.name, action,
                        self.cached.name, type(exc).__name__, exc)

    def fresh(self, entry):
        """True while ``entry`` is younger than this app's region ``expire``.

        The expiry stored in the entry only serves the storage (as a TTL):
        each app judges freshness by its own configuration.
        """
        return not self.check_age or time.time() - entry[0] < self.expire

    def read(self, key):
        """Return the fresh entry for ``key``, None on a miss or a failed read."""
        try:
            entry = self.get_entry(key)
        except Exception as exc:
            self.warn('read', exc)
            return None
        return entry if entry is not None and self.fresh(entry) else None

    def write(self, key, value):
        try:
            self.manager.set_entry(key, (time.time(), self.expire, value), self.expire)
        except Exception as exc:
            self.warn('store', exc)

    def delete(self, key):
        try:
            del self.manager[key]
        except KeyError:
            pass
        except Exception as exc:
            self.warn('delete', exc)

    def create(self, key, compute, replay=None, force=False):
        """Compute and store the value of ``key``, once for all concurrent misses.

        The region's creation lock serialises creators: whoever gets it
        after another found the entry that one stored, and returns
        ``replay(stored)`` (or the stored value).  ``compute()`` returns
        ``(result, stored)``; ``stored`` is :data:`NOT_STORED` to keep the
        result out of the cache.  ``force`` computes even when an entry
        exists (``refresh``).
        """
        lock = None
        try:
            lock = self.manager.get_creation_lock(key)
            if not lock.acquire(True):
                lock = None
        except Exception as exc:
            self.warn('lock', exc)
            lock = None
        try:
            if not force and lock is not None:
                entry = self.read(key)
                if entry is not None:
                    return entry[2] if replay is None else replay(entry[2])
            result, stored = compute()
            if stored is not NOT_STORED:
                self.write(key, stored)
            return result
        finally:
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:
                    self.warn('unlock', exc)


def _bindings(registry):
    return getattr(registry, _BINDINGS, _NO_BINDINGS)


class CachedFunction:
    """What one decorated function needs to be bound and called.

    Views use the subclass :class:`~pyramid_beaker.cached_views.CachedView`.
    """

    view = False

    def __init__(self, func, region, vary, ignore, should_cache, per_user):
        self.func = func
        self.region = region
        self.vary = vary
        self.ignore = ignore
        self.should_cache = should_cache
        self.per_user = per_user
        self.name = '%s.%s' % (func.__module__, func.__qualname__)
        self.key = None  # key(args, kw) -> text, for all but views
        self.warned_unbound = False

    def binding(self, registry):
        """The enabled binding of this function in ``registry``, or None."""
        binding = _bindings(registry).get(self)
        if binding is None:
            self.unbound()
        elif binding.enabled:
            return binding
        return None

    def unbound(self):
        if not self.warned_unbound:
            self.warned_unbound = True
            log.warning('%s is called in an app where no config.scan() or '
                        'config.add_cached_function() bound it to cache region '
                        '%r; it runs uncached there', self.name, self.region)

    def stored_form(self, value, stored):
        """``stored``, or NOT_STORED when ``should_cache`` refuses ``value``."""
        if self.should_cache is None or self.should_cache(value):
            return stored
        return NOT_STORED

    def where(self):
        """The function's name, file and line, for error messages."""
        code = self.func.__code__
        return '%s (%s, line %d)' % (self.name, code.co_filename, code.co_firstlineno)

    def create(self, binding, key, args, kw, force=False):
        """The slow path of a call: a miss, or an explicit refresh."""

        def compute():
            value = self.func(*args, **kw)
            return value, self.stored_form(value, value)

        return binding.create(key, compute, force=force)

    def wrapper(self):
        """The function that replaces the decorated one."""
        return _function_wrapper(self)


def _in_class(func):
    """True for a function defined in a class body (a method)."""
    outer, dot, _ = func.__qualname__.rpartition('.')
    return bool(dot) and not outer.endswith('<locals>')


def _shape(func):
    """``'view'``, ``'context view'``, ``'view method'``, ``'method'`` or ``'function'``.

    Parameters ``(request)`` or ``(context, request)`` make a view; a method
    taking only ``self`` is a *view method*: cached as a view of
    ``self.request`` when the object has one (a class-based view), by its
    class otherwise.
    """
    params = inspect.signature(func).parameters.values()
    names = tuple(p.name for p in params)
    plain = all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
                for p in params)
    method = _in_class(func)
    if plain and names == ('request',):
        return 'view'
    if plain and names == ('context', 'request'):
        return 'context view'
    if method and plain and names == ('self',):
        return 'view method'
    if method and names[:1] in (('self',), ('cls',)):
        return 'method'
    return 'function'


class cached_region:
    """Cache the results of a function, a method or a view in a cache region.

    .. code-block:: python

        from pyramid_beaker import cached_region

        @cached_region('short_term')
        def exchange_rate(base, quote):
            return slow_api_call(base, quote)

        @view_config(route_name='report', renderer='json')
        @cached_region('short_term', vary=('Accept-Language',))
        def report(request):
            return build_report(request.params)

    :param region: the name of a region configured in the app (by the
        ``cache.regions`` setting or ``config.add_cache_region``).
    :param vary: views only: request header names, or callables of the
        request returning a keyable value, that the response depends on.
    :param ignore: names of parameters left out of the key (such as a
        database session).
    :param should_cache: ``should_cache(value)`` returning false keeps a
        result out of the cache (e.g. ``lambda value: value is not None``).
    :param per_user: views only: ``True`` adds ``request.authenticated_userid``
        to the key, a callable of the request adds what it returns.  Only
        then may a view that used ``request.session`` be stored, and only
        for a known user (a key that is not None).

    A function whose parameters are exactly ``(request)`` or
    ``(context, request)`` is cached as a view, and so is a method taking
    only ``self`` on an object with a ``request`` attribute (a class-based
    view).  Any other function is keyed by its arguments (see
    :mod:`pyramid_beaker.keys`); methods by the class of ``self``/``cls``.
    Put ``@classmethod`` and ``@staticmethod`` above ``@cached_region``.  The function is bound by
    ``config.scan()`` (which needs ``config.include('pyramid_beaker')``
    first) or :func:`add_cached_function`; where no app bound it, it runs
    uncached and logs one warning.

    The decorated function has ``invalidate(*args, **kw)`` (drop the entry
    of those arguments), ``refresh(*args, **kw)`` (compute and store it
    again, returning the value) and ``region`` (the region name).
    """

    def __init__(self, region, vary=(), ignore=(), should_cache=None,
                 per_user=False, _category='pyramid', _depth=0):
        if not isinstance(region, str) or not region.strip():
            raise TypeError('"region" must be a region name, not %r' % (region,))
        if isinstance(vary, str):
            vary = (vary,)
        vary = tuple(vary)
        for item in vary:
            if not (callable(item) or (isinstance(item, str) and item)):
                raise TypeError('"vary" must hold header names or callables '
                                'of the request, not %r' % (item,))
        if isinstance(ignore, str):
            ignore = (ignore,)
        if should_cache is not None and not callable(should_cache):
            raise TypeError('"should_cache" must be callable, not %r' % (should_cache,))
        if not (isinstance(per_user, bool) or callable(per_user)):
            raise TypeError('"per_user" must be True, False or a callable of '
                            'the request, not %r' % (per_user,))
        self.region = region
        self.vary = vary
        self.ignore = tuple(ignore)
        self.should_cache = should_cache
        self.per_user = per_user
        self.category = _category
        self.depth = _depth

    def __call__(self, wrapped):
        if isinstance(wrapped, (classmethod, staticmethod)):
            raise TypeError('@cached_region must come below @%s'
                            % type(wrapped).__name__)
        if not inspect.isfunction(wrapped):
            raise TypeError('@cached_region decorates functions, not %r' % (wrapped,))
        shape = _shape(wrapped)
        if shape in _VIEW_SHAPES:
            # Imported here, not above: cached_views builds on this module.
            from .cached_views import CachedView
            kind = CachedView
        else:
            kind = CachedFunction
        cached = kind(wrapped, self.region, self.vary, self.ignore,
                      self.should_cache, self.per_user)
        if cached.view and self.ignore:
            raise TypeError('@cached_region on view %s: views are keyed by the '
                            'request, so "ignore" does not apply' % cached.name)
        if not cached.view and (self.vary or self.per_user):
            raise TypeError(
                '@cached_region on %s: "vary" and "per_user" apply to views, '
                'whose parameters are (request) or (context, request)'
                % cached.name)
        if shape != 'view' and shape != 'context view':
            cached.key = KeyMaker(wrapped, self.ignore, owner=shape != 'function').key
        wrapper = cached.wrapper()
        functools.wraps(wrapped)(wrapper)
        wrapper.__cached_region__ = cached
        wrapper.region = self.region

        def callback(scanner, name, ob):
            config = scanner.config.with_package(info.module)
            try:
                directive = config.add_cached_function
            except AttributeError:
                raise ConfigurationError(
                    '@cached_region(%r) on %s: call config.include('
                    '"pyramid_beaker") before config.scan()'
                    % (self.region, cached.where())) from None
            directive(wrapper, _info=info.codeinfo)

        info = venusian.attach(wrapper, callback, category=self.category,
                               depth=self.depth + 1)
        if info.scope != 'class':
            _adopt_callbacks(wrapped, wrapper)
        return wrapper


def _function_wrapper(cached):
    func, key_of, now = cached.func, cached.key, time.time

    def cached_function(*args, **kw):
        # The hit path, kept flat: it is what a cached call costs.  The
        # registry is looked up as get_current_registry() does, minus a call.
        registry = threadlocals.get()['registry']
        binding = getattr(registry, _BINDINGS, _NO_BINDINGS).get(cached)
        if binding is None or not binding.enabled:
            if binding is None:
                cached.unbound()
            return func(*args, **kw)
        key = key_of(args, kw)
        if len(key) > binding.key_length:
            key = fit(key, binding.key_length)
        try:
            entry = binding.get_entry(key)
        except Exception as exc:
            binding.warn('read', exc)
            return func(*args, **kw)
        if entry is not None and (not binding.check_age
                                  or now() - entry[0] < binding.expire):
            return entry[2]
        return cached.create(binding, key, args, kw)

    def invalidate(*args, **kw):
        """Drop the entry of these arguments in the current app's region."""
        binding = cached.binding(get_current_registry())
        if binding is not None:
            binding.delete(fit(cached.key(args, kw), binding.key_length))

    def refresh(*args, **kw):
        """Compute the value of these arguments again, store and return it."""
        binding = cached.binding(get_current_registry())
        if binding is None:
            return func(*args, **kw)
        key = fit(cached.key(args, kw), binding.key_length)
        return cached.create(binding, key, args, kw, force=True)

    cached_function.invalidate = invalidate
    cached_function.refresh = refresh
    return cached_function


def _adopt_callbacks(wrapped, wrapper):
    """Keep decorators that attached to ``wrapped`` (e.g. @view_config below us).

    venusian only runs callbacks attached to the object the scan finds,
    which is ``wrapper``; they are copied onto it, so the view is registered
    with the cached function instead of being silently dropped.
    """
    theirs = wrapped.__dict__.get(venusian.ATTACH_ATTR)
    if theirs is None or not theirs.attached_to(None, None, wrapped):
        return
    mine = getattr(wrapper, venusian.ATTACH_ATTR)
    for category, callbacks in theirs.items():
        mine.setdefault(category, []).extend(callbacks)


def namespace_of(cached, region, registry):
    """The namespace of ``cached``'s entries in ``region`` for this app.

    ``<region>:<module>.<qualified name>``, the same in every process so
    that workers share a server-side region; process-local (memory)
    regions add ``@app<n>``, so two apps in one process never share entries.
    """
    namespace = '%s:%s' % (region.name, cached.name)
    if region.options.get('type') in PROCESS_LOCAL_TYPES:
        namespace += '@app%d' % _app_table(registry).number
    return namespace


def _app_table(registry):
    table = getattr(registry, _BINDINGS, None)
    if table is None:
        table = _AppBindings()
        setattr(registry, _BINDINGS, table)
    return table


def add_cached_function(config, function):
    """Bind a ``@cached_region`` function to the app's region of that name.

    Added as a Configurator method by ``config.include('pyramid_beaker')``;
    ``config.scan()`` calls it for every decorated function it finds.  Call
    it yourself to bind a function without scanning:

    .. code-block:: python

        config.add_cached_function(exchange_rate)

    :param function: a function decorated with :class:`cached_region`, or
        its dotted name.

    At commit (after the regions exist) a missing region raises
    :class:`~pyramid.exceptions.ConfigurationError` naming the region and
    the function's file and line.  The function is listed in the
    introspector under ``'beaker cached functions'``, related to its region.
    """
    function = config.maybe_dotted(function)
    cached = getattr(function, '__cached_region__', None)
    if not isinstance(cached, CachedFunction):
        raise ConfigurationError(
            '"function" must be decorated with @cached_region, not %r' % (function,))
    intr = config.introspectable(
        'beaker cached functions', cached.name, config.object_description(function),
        'beaker cached view' if cached.view else 'beaker cached function')
    intr.update(function=function, region=cached.region, view=cached.view,
                vary=cached.vary, ignore=cached.ignore, per_user=cached.per_user)
    intr.relate('beaker cache regions', cached.region)

    def register():
        region = get_region(config.registry, cached.region)
        if region is None:
            raise ConfigurationError(
                '@cached_region("%s") on %s: no cache region named "%s" is '
                'configured (list it in "cache.regions" or call '
                'config.add_cache_region(%r))'
                % (cached.region, cached.where(), cached.region, cached.region))
        namespace = namespace_of(cached, region, config.registry)
        _app_table(config.registry)[cached] = Binding(cached, region, namespace)
        intr['namespace'] = namespace

    config.action(None, register, introspectables=(intr,))
