"""Cached functions and methods: the call path of a ``@cached_region`` function.

:class:`CachedFunction` holds what one decorated function needs to be bound
and called; :func:`function_wrapper` and :func:`coroutine_wrapper` build the
function that replaces it.  Views use the subclass in
:mod:`pyramid_beaker.cached_views`.
"""
import time

from pyramid.threadlocal import get_current_registry
from pyramid.threadlocal import manager as threadlocals

from .binding import NOT_STORED, binding_for, log
from .keys import MEMO_MISSES, NotMemoized, fit


class CachedFunction:
    """What one decorated function needs to be bound and called.

    ``options`` are the decorator's keyword arguments, validated.  Views use
    the subclass :class:`~pyramid_beaker.cached_views.CachedView`.
    """

    view = False

    def __init__(self, func, region, name=None, vary=(), ignore=(), should_cache=None,
                 per_user=None, shared=False, expire=None,
                 stale_while_revalidate=0):
        self.func = func
        self.region = region
        self.vary = vary
        self.ignore = ignore
        self.should_cache = should_cache
        self.per_user = per_user
        self.shared = shared
        self.expire = expire
        self.stale_while_revalidate = stale_while_revalidate
        #: Names the function's entries: ``<module>.<qualified name>`` or ``name``.
        self.name = name or '%s.%s' % (func.__module__, func.__qualname__)
        self.key = None  # key(args, kw) -> text, for all but views
        self.compute_key = None  # the same, without the memo
        self.memo = None  # memo(*args) -> text (see keys.KeyMaker.memo)
        #: Weak references to its bindings, oldest app first.
        self.bound_in = []
        self.warned_unbound = False

    def use_keys(self, maker):
        """Key calls with ``maker``, a :class:`~pyramid_beaker.keys.KeyMaker`."""
        self.key, self.compute_key, self.memo = maker.key, maker.compute, maker.memo

    def binding(self, registry):
        """The enabled binding this function uses with ``registry`` current, or None."""
        binding = binding_for(self, registry)
        if binding is None:
            self.unbound()
        elif binding.enabled:
            return binding
        return None

    def unbound(self):
        if not self.warned_unbound:
            self.warned_unbound = True
            log.warning('%s is called where no app bound it to cache region %r '
                        '(by config.scan() or config.add_cached_function()); it '
                        'runs uncached there', self.name, self.region)

    def stored_form(self, value, stored):
        """``stored``, or NOT_STORED when ``should_cache`` refuses ``value``."""
        if self.should_cache is None or self.should_cache(value):
            return stored
        return NOT_STORED

    def where(self):
        """The function's name, file and line, for error messages."""
        code = self.func.__code__
        return '%s (%s, line %d)' % (self.name, code.co_filename, code.co_firstlineno)

    def create(self, binding, key, args, kw, force=False, entry=None):
        """The slow path of a call: a miss, a stale entry or an explicit refresh."""

        def compute():
            value = self.func(*args, **kw)
            return value, self.stored_form(value, value)

        return binding.create(key, compute, force=force, entry=entry)

    async def create_async(self, binding, key, args, kw, force=False, entry=None):
        """:meth:`create` for ``async def`` functions."""

        async def compute():
            value = await self.func(*args, **kw)
            return value, self.stored_form(value, value)

        return await binding.create_async(key, compute, force=force, entry=entry)

    def wrapper(self):
        """The function that replaces the decorated one."""
        return function_wrapper(self)

    def current_binding(self):
        """The binding of the current app (see :func:`~.binding.binding_for`)."""
        return self.binding(get_current_registry())

    def invalidate_all(self):
        """Drop every entry of the function (see :meth:`.Binding.invalidate_all`)."""
        binding = self.current_binding()
        if binding is not None:
            binding.invalidate_all()

    def attach_api(self, wrapper, invalidate, refresh):
        wrapper.invalidate = invalidate
        wrapper.refresh = refresh
        wrapper.invalidate_all = self.invalidate_all
        return wrapper


def _no_memo(*args):
    raise NotMemoized


def function_wrapper(cached):
    func, now = cached.func, time.time
    memo, compute_key = cached.memo or _no_memo, cached.compute_key

    def cached_function(*args, **kw):
        # The hit path, kept flat: it is what a cached call costs.  The
        # registry is looked up as get_current_registry() does, minus calls,
        # and its bindings (binding.BINDINGS) as an attribute, not getattr().
        try:
            registry = threadlocals.stack[-1]['registry']
        except IndexError:  # outside a request and config.begin()
            registry = threadlocals.get()['registry']
        try:
            binding = registry.pyramid_beaker_cached_functions[cached]
        except (AttributeError, KeyError):
            binding = None
        if binding is None or not binding.enabled:
            binding = cached.binding(registry)
            if binding is None:
                return func(*args, **kw)
        try:
            if kw:
                raise NotMemoized
            key = memo(*args)
        except MEMO_MISSES:
            key = compute_key(args, kw)
        if len(key) > binding.key_length:
            key = fit(key, binding.key_length)
        try:
            entry = binding.get_entry(key)
        except Exception as exc:
            binding.warn('read', exc)
            return func(*args, **kw)
        if entry is not None and (not binding.check_age
                                  or now() - entry[0] < binding.expire):
            binding.counts.hits += 1
            return entry[2]
        return cached.create(binding, key, args, kw, entry=entry)

    def invalidate(*args, **kw):
        """Drop the entry of these arguments in the current app's region."""
        binding = cached.current_binding()
        if binding is not None:
            binding.delete(fit(cached.key(args, kw), binding.key_length))

    def refresh(*args, **kw):
        """Compute the value of these arguments again, store and return it."""
        binding = cached.current_binding()
        if binding is None:
            return func(*args, **kw)
        key = fit(cached.key(args, kw), binding.key_length)
        return cached.create(binding, key, args, kw, force=True)

    return cached.attach_api(cached_function, invalidate, refresh)


def coroutine_wrapper(cached):
    """The wrapper of an ``async def`` function: ``await f(x)`` is cached."""
    func, now = cached.func, time.time
    memo, compute_key = cached.memo or _no_memo, cached.compute_key

    async def cached_coroutine(*args, **kw):
        # The hit path of function_wrapper's cached_function, awaited.
        try:
            registry = threadlocals.stack[-1]['registry']
        except IndexError:  # outside a request and config.begin()
            registry = threadlocals.get()['registry']
        try:
            binding = registry.pyramid_beaker_cached_functions[cached]
        except (AttributeError, KeyError):
            binding = None
        if binding is None or not binding.enabled:
            binding = cached.binding(registry)
            if binding is None:
                return await func(*args, **kw)
        try:
            if kw:
                raise NotMemoized
            key = memo(*args)
        except MEMO_MISSES:
            key = compute_key(args, kw)
        if len(key) > binding.key_length:
            key = fit(key, binding.key_length)
        try:
            entry = binding.get_entry(key)
        except Exception as exc:
            binding.warn('read', exc)
            return await func(*args, **kw)
        if entry is not None and (not binding.check_age
                                  or now() - entry[0] < binding.expire):
            binding.counts.hits += 1
            return entry[2]
        return await cached.create_async(binding, key, args, kw, entry=entry)

    def invalidate(*args, **kw):
        """Drop the entry of these arguments in the current app's region."""
        binding = cached.current_binding()
        if binding is not None:
            binding.delete(fit(cached.key(args, kw), binding.key_length))

    async def refresh(*args, **kw):
        """Compute the value of these arguments again, store and return it."""
        binding = cached.current_binding()
        if binding is None:
            return await func(*args, **kw)
        key = fit(cached.key(args, kw), binding.key_length)
        return await cached.create_async(binding, key, args, kw, force=True)

    return cached.attach_api(cached_coroutine, invalidate, refresh)
