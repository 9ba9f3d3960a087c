"""What one request asked of the caches and of the session, for pyramid_debugtoolbar.

When an app includes both pyramid_beaker and pyramid_debugtoolbar,
:func:`add_toolbar_panel` (an action of ``includeme``) adds the panel of
:mod:`pyramid_beaker.debugtoolbar_panel` to the toolbar.  For each request
the toolbar watches, the panel then lists every cache call (function,
region, key, hit, stale or miss, time) and the session's work (loaded or
not, keys changed, each call to the store and its time).

Recording costs nothing until the toolbar shows its first request: the
panel then installs a :class:`Tracer` on each of the app's bindings and
wraps the session factory's store in a :class:`TracedStore`; both write to
the :class:`RequestTrace` the panel attached to the current request.
"""
import sys
import time

from pyramid.interfaces import ISessionFactory
from pyramid.threadlocal import get_current_request

#: The request attribute holding its :class:`RequestTrace`.
TRACE = 'pyramid_beaker_trace'
#: Store operations that reach the store (the cookie store's are local).
_STORE_OPERATIONS = ('load', 'save', 'save_unloaded', 'touch', 'delete', 'load_cookie',
                     'dump_cookie')
_TRACED = 'pyramid_beaker_traced'


class RequestTrace:
    """The cache calls and store calls of one request.

    :ivar calls: one dict per cache call: ``function``, ``region``, ``key``,
        ``outcome`` (``'hit'``, ``'stale'``, ``'miss'``, ``'error'``) and
        ``time`` (seconds, including the computation of a miss).
    :ivar store_calls: one dict per session store call: ``operation``,
        ``time`` and ``error`` (None, or what failed).
    :ivar session: the request's session, once the response was made, or
        None if the request never touched ``request.session``.
    """

    def __init__(self):
        self.calls = []
        self.store_calls = []
        self.session = None


def current_trace():
    """The :class:`RequestTrace` of the current request, or None."""
    request = get_current_request()
    return None if request is None else request.__dict__.get(TRACE)


class Tracer:
    """Records the calls of one binding into the current request's trace."""

    def trace(self, binding):
        """Make ``binding`` record its reads; later calls change nothing."""
        if binding.tracer is not None:
            return
        read = binding._read_entry

        def traced_get_entry(key):
            trace = current_trace()
            if trace is None:
                return read(key)
            call = {'function': binding.cached.name, 'region': binding.region.name,
                    'key': key, 'outcome': 'error', 'time': 0.0, 'binding': binding}
            trace.calls.append(call)
            started = time.perf_counter()
            try:
                entry = read(key)
            finally:
                call['time'] = time.perf_counter() - started
            if entry is None:
                call['outcome'] = 'miss'
            else:
                call['outcome'] = 'hit' if binding.fresh(entry) else 'stale'
            return entry

        binding.tracer = self
        binding.get_entry = traced_get_entry

    def created(self, binding, key, seconds):
        """Add the slow path of a call (lock, computation, store) to its record."""
        trace = current_trace()
        if trace is None:
            return
        for call in reversed(trace.calls):
            if call['binding'] is binding and call['key'] == key:
                call['time'] += seconds
                return
        trace.calls.append({'function': binding.cached.name, 'region': binding.region.name,
                            'key': key, 'outcome': 'refresh', 'time': seconds,
                            'binding': binding})


class TracedStore:
    """A session store that records each call in the current request's trace."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        value = getattr(self.store, name)
        if name not in _STORE_OPERATIONS:
            return value

        def traced(*args, **kw):
            trace = current_trace()
            if trace is None:
                return value(*args, **kw)
            record = {'operation': name, 'time': 0.0, 'error': None}
            trace.store_calls.append(record)
            started = time.perf_counter()
            try:
                return value(*args, **kw)
            except Exception as exc:
                record['error'] = '%s: %s' % (type(exc).__name__, exc)
                raise
            finally:
                record['time'] = time.perf_counter() - started

        return traced


def start_tracing(registry):
    """Record the cache and session calls of the app of ``registry`` (once)."""
    if getattr(registry, _TRACED, False):
        return
    from .binding import bindings
    from .session import SessionFactory

    tracer = Tracer()
    for binding in list(bindings(registry).values()):
        tracer.trace(binding)
    factory = registry.queryUtility(ISessionFactory)
    if isinstance(factory, SessionFactory) and not isinstance(factory.store, TracedStore):
        factory.store = TracedStore(factory.store)
    setattr(registry, _TRACED, True)


def add_toolbar_panel(registry):
    """Add the pyramid_beaker panel to the app's debug toolbar, if it has one.

    Run at commit by ``includeme``; pyramid_debugtoolbar includes itself
    immediately, so it is found whichever of the two was included first.
    An app that never imported the toolbar has none: it is not imported
    then (that would cost every app's start a good 50 ms).
    """
    if 'pyramid_debugtoolbar' not in sys.modules:
        return
    try:
        from pyramid_debugtoolbar.toolbar import IPanelMap, IToolbarWSGIApp
    except ImportError:  # the toolbar is an optional, development-only tool
        return
    toolbar = registry.queryUtility(IToolbarWSGIApp)
    if toolbar is None:
        return
    from .debugtoolbar_panel import BeakerDebugPanel

    panels = toolbar.registry.queryUtility(IPanelMap)
    if panels is not None:
        panels[(BeakerDebugPanel.name, False)] = BeakerDebugPanel
