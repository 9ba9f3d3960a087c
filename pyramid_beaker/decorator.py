"""``@cached_region``: keep a function's, a method's or a view's results in a cache region.

The decorator only marks the function.  ``config.scan()`` finds it (venusian
category ``'pyramid'``) and calls
:func:`~pyramid_beaker.directives.add_cached_function`, whose action binds
it, at commit, to the region of that name in the app being configured (see
:mod:`pyramid_beaker.binding`).  Plain functions and methods are cached by
:mod:`pyramid_beaker.cached_functions`, views by
:mod:`pyramid_beaker.cached_views`.
"""
import functools
import inspect
from typing import Any, Callable, Iterable, TypeVar, Union

import venusian
from pyramid.exceptions import ConfigurationError

from .cached_functions import CachedFunction, coroutine_wrapper
from .cached_views import CachedView
from .keys import KeyMaker

_VIEW_SHAPES = frozenset(('view', 'context view', 'view method'))
_Function = TypeVar('_Function', bound=Callable[..., Any])


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
    :param shared: views only: ``True`` serves one entry to every visitor,
        identified or not (see below).
    :param expire: seconds this function's entries stay fresh, instead of
        the region's ``expire``.
    :param stale_while_revalidate: seconds an expired entry may still be
        served (default 0): while one caller computes the new value, the
        others get the old one at once instead of waiting.
    :param name: names the function's entries instead of its module and
        qualified name; needed by closures made by one factory, which
        share a qualified name (binding two of them without distinct names
        raises :class:`~pyramid.exceptions.ConfigurationError`).

    A function whose parameters are exactly ``(request)`` or
    ``(context, request)`` is cached as a view, and so is a method taking
    only ``self`` on an object with a ``request`` attribute (a class-based
    view).  Any other function is keyed by its arguments (see
    :mod:`pyramid_beaker.keys`); methods by the class of ``self``/``cls``.
    ``async def`` functions are cached too: ``await f(x)`` hits, and
    concurrent misses compute once.  Put ``@classmethod`` and
    ``@staticmethod`` above ``@cached_region``.

    A view request with an identity (``request.authenticated_userid`` not
    None, or an ``Authorization`` header) neither reads nor writes the
    entry that anonymous requests share, unless ``per_user``, ``vary`` or
    ``shared=True`` says how such requests are served.

    The function is bound by ``config.scan()`` (which needs
    ``config.include('pyramid_beaker')`` first) or
    :func:`~pyramid_beaker.directives.add_cached_function`.  A call uses the
    binding of the current app (in a request, or after ``config.begin()``);
    with no app current (a script, a thread, a background job) it uses that
    of the app created last that bound the function and still exists.  In
    an app that did not bind it, it runs uncached and logs one warning.

    The decorated function has ``invalidate(*args, **kw)`` (drop the entry
    of those arguments), ``refresh(*args, **kw)`` (compute and store it
    again, returning the value), ``invalidate_all()`` (drop all its
    entries: the app's, in a memory region; every process's, in a shared
    store) and ``region`` (the region name).
    """

    def __init__(self, region: str,
                 vary: Union[str, Iterable[Union[str, Callable[[Any], Any]]]] = (),
                 ignore: Union[str, Iterable[str]] = (),
                 should_cache: Union[Callable[[Any], bool], None] = None,
                 per_user: Union[bool, Callable[[Any], Any], None] = None,
                 shared: bool = False,
                 expire: Union[int, float, None] = None,
                 stale_while_revalidate: Union[int, float] = 0,
                 name: Union[str, None] = None,
                 _category: str = 'pyramid', _depth: int = 0) -> None:
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
        if not (per_user is None or isinstance(per_user, bool) or callable(per_user)):
            raise TypeError('"per_user" must be True, False or a callable of '
                            'the request, not %r' % (per_user,))
        if not isinstance(shared, bool):
            raise TypeError('"shared" must be True or False, not %r' % (shared,))
        if shared and per_user:
            raise TypeError('"shared" and "per_user" exclude each other: a view '
                            'is either the same for everyone or kept per user')
        if expire is not None and not _seconds(expire, positive=True):
            raise TypeError('"expire" must be a number of seconds greater than 0, '
                            'not %r' % (expire,))
        if not _seconds(stale_while_revalidate):
            raise TypeError('"stale_while_revalidate" must be a number of seconds '
                            '(0 or more), not %r' % (stale_while_revalidate,))
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise TypeError('"name" must be a non-empty string, not %r' % (name,))
        self.region = region
        self.options = dict(
            name=name, vary=vary, ignore=tuple(ignore), should_cache=should_cache,
            per_user=per_user, shared=shared, expire=expire,
            stale_while_revalidate=stale_while_revalidate)
        self.category = _category
        self.depth = _depth

    def __call__(self, wrapped: _Function) -> _Function:
        if isinstance(wrapped, (classmethod, staticmethod)):
            raise TypeError('@cached_region must come below @%s'
                            % type(wrapped).__name__)
        if not inspect.isfunction(wrapped):
            raise TypeError('@cached_region decorates functions, not %r' % (wrapped,))
        shape = _shape(wrapped)
        coroutine = inspect.iscoroutinefunction(wrapped)
        if coroutine and shape in ('view', 'context view'):
            raise TypeError('@cached_region on %s.%s: Pyramid calls views '
                            'synchronously, so a view cannot be async def'
                            % (wrapped.__module__, wrapped.__qualname__))
        options = self.options
        cached: CachedFunction
        if shape in _VIEW_SHAPES and not coroutine:
            cached = CachedView(wrapped, self.region, **options)
        else:
            cached = CachedFunction(wrapped, self.region, **options)
        if cached.view and options['ignore']:
            raise TypeError('@cached_region on view %s: views are keyed by the '
                            'request, so "ignore" does not apply' % cached.name)
        if not cached.view and (options['vary'] or options['per_user'] is not None
                                or options['shared']):
            raise TypeError(
                '@cached_region on %s: "vary", "per_user" and "shared" apply to '
                'views, whose parameters are (request) or (context, request)'
                % cached.name)
        if shape != 'view' and shape != 'context view':
            cached.use_keys(KeyMaker(wrapped, options['ignore'], owner=shape != 'function'))
        wrapper = coroutine_wrapper(cached) if coroutine else cached.wrapper()
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


def _seconds(value, positive=False):
    """True for a number of seconds (not a bool), above 0 if ``positive``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value > 0 if positive else value >= 0
