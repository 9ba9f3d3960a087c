"""The pyramid_beaker panel of pyramid_debugtoolbar (needs the toolbar installed).

Added to the toolbar by :func:`pyramid_beaker.debugtoolbar.add_toolbar_panel`.
"""
from pyramid.interfaces import ISessionFactory
from pyramid_debugtoolbar.panels import DebugPanel

from .debugtoolbar import TRACE, RequestTrace, start_tracing
from .session import SessionFactory


class BeakerDebugPanel(DebugPanel):
    """The cache calls and the session's work of one request."""

    name = 'pyramid_beaker'
    has_content = True
    template = 'pyramid_beaker:templates/debugtoolbar.dbtmako'
    title = 'Beaker: cache and session'
    nav_title = 'Beaker'

    def __init__(self, request):
        start_tracing(request.registry)
        self.trace = RequestTrace()
        request.__dict__[TRACE] = self.trace
        self.request = request
        factory = request.registry.queryUtility(ISessionFactory)
        self.store_type = None
        if isinstance(factory, SessionFactory):
            self.store_type = factory.options['type']
            self.client_side = factory.client_side

    @property
    def nav_subtitle(self):
        calls = self.trace.calls
        hits = sum(1 for call in calls if call['outcome'] == 'hit')
        return '%d/%d hits' % (hits, len(calls)) if calls else ''

    def process_response(self, response):
        # The session saves after this, in a response callback: keep it and
        # read what it did when the panel is shown.
        self.trace.session = self.request.__dict__.get('session')
        self.request = None

    def render_vars(self, request):
        trace = self.trace
        calls = [{name: call[name] for name in ('function', 'region', 'key', 'outcome')}
                 for call in trace.calls]
        for shown, call in zip(calls, trace.calls):
            shown['ms'] = '%.3f' % (call['time'] * 1000)
        session = trace.session
        work = None
        if self.store_type is not None:
            # Read-only look at the session's own bookkeeping.
            loaded = bool(session is not None and getattr(session, '_loaded', False))
            changed = sorted(getattr(session, '_changed', {}) if loaded
                             else getattr(session, '_pending', None) or ())
            deleted = sorted(getattr(session, '_deleted', ())) if loaded else []
            store_calls = [dict(call, ms='%.3f' % (call['time'] * 1000))
                           for call in trace.store_calls]
            work = {
                'store': self.store_type,
                'accessed': session is not None,
                'loaded': loaded,
                'changed': changed,
                'deleted': deleted,
                'store_calls': store_calls,
                'round_trips': 0 if self.client_side else len(store_calls),
                'ms': '%.3f' % (sum(call['time'] for call in trace.store_calls) * 1000),
            }
        total = sum(call['time'] for call in trace.calls) * 1000
        return {'calls': calls, 'cache_ms': '%.3f' % total, 'session': work}
