"""Cached views: how ``@cached_region`` keys, stores and replays a view's result.

:mod:`pyramid_beaker.decorator` builds a :class:`CachedView` for a function
whose parameters are ``(request)`` or ``(context, request)``, or a method
taking only ``self`` (a class-based view).  Only GET and HEAD requests are
cached; the key is made from the request (see :meth:`CachedView.request_key`)
and a response is stored as its status, headers and body, so that a hit
builds a new one.
"""
import functools
import inspect

from pyramid.interfaces import IRoutesMapper, ISecurityPolicy
from pyramid.response import Response
from pyramid.threadlocal import get_current_registry
from webob import Response as WebObResponse

from .binding import NOT_STORED
from .cached_functions import CachedFunction
from .keys import NotMemoized, encode, encode_tuple, fit

VIEW_METHODS = frozenset(('GET', 'HEAD'))
#: Response headers a stored response leaves out (Content-Length is written anew).
_NOT_REPLAYED = frozenset(('set-cookie', 'content-length'))
_OK = Response().status


class CachedView(CachedFunction):
    """A decorated view: keyed by the request, its result stored for replay."""

    view = True

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        #: True unless the decorator said how identified requests are served:
        #: requests with an identity never use the entries anonymous requests
        #: share, unless ``per_user``, ``vary`` or ``shared=True`` is given.
        self.guarded = self.per_user is None and not self.vary and not self.shared

    def request_key(self, request, registry):
        """Key text of a view request; also returns the user's key (or None).

        The key holds the route name, the URL without its query string
        (scheme, host, path), the query's ``name=value`` pairs sorted by
        name (repeated names keep their order: ``?sort=a&sort=b`` is not
        ``?sort=b&sort=a``), the ``vary`` values and the user's key
        (``per_user``).
        """
        environ = request.environ
        route = _route_name(request, request.__dict__, registry)
        where = (route, environ['wsgi.url_scheme'], environ.get('HTTP_HOST') or request.host,
                 environ.get('SCRIPT_NAME', ''), environ.get('PATH_INFO', ''),
                 environ.get('QUERY_STRING', ''))
        if not self.vary and not self.per_user:
            try:
                return _remembered_key(*where), None
            except NotMemoized:
                return _plain_key(*where), None
        route, url, pairs = _request_parts(*where)
        parts = [encode(route), encode(url), encode(pairs)]
        for item in self.vary:
            value = item(request) if callable(item) else request.headers.get(item)
            parts.append(encode(value, 'vary item %r of view %s' % (item, self.name)))
        user = None
        if self.per_user:
            if self.per_user is True:
                user = request.authenticated_userid
            else:
                user = self.per_user(request)
            parts.append(encode(user, 'the per_user key of view %s' % self.name))
        return encode_tuple(parts), user

    def call(self, args, request, force=False):
        """Run the view for ``request``, or replay its stored result."""
        try:
            registry = request.registry
        except AttributeError:
            registry = _registry_of(request)
        # The hit path looks the binding up as the function wrapper does.
        try:
            binding = registry.pyramid_beaker_cached_functions[self]
        except (AttributeError, KeyError):
            binding = None
        if binding is None or not binding.enabled:
            binding = self.binding(registry)
        environ, state = request.environ, request.__dict__
        if binding is None or environ.get('REQUEST_METHOD', 'GET') not in VIEW_METHODS:
            return self.func(*args)
        had_session = 'session' in state
        if self.guarded and _identified(request, environ, registry):
            return self.func(*args)
        # A session loaded only to find the user (a session-based security
        # policy) does not count as the view using it while it stays empty.
        probed = not had_session and 'session' in state
        key, user = self.request_key(request, registry)
        if len(key) > binding.key_length:
            key = fit(key, binding.key_length)
        entry = None
        if not force:
            try:
                entry = binding.get_entry(key)
            except Exception as exc:
                binding.warn('read', exc)
                return self.func(*args)
            if entry is not None and binding.fresh(entry):
                binding.counts.hits += 1
                return _replay(request, entry[2])

        def compute():
            value = self.func(*args)
            stored = _view_entry(request, value, user, probed)
            return value, self.stored_form(value, stored)

        return binding.create(key, compute, functools.partial(_replay, request),
                              force=force, entry=entry)

    def forget(self, request):
        """Drop the entry of ``request`` in its app's region."""
        registry = _registry_of(request)
        binding = self.binding(registry)
        if binding is not None:
            binding.delete(fit(self.request_key(request, registry)[0], binding.key_length))

    def wrapper(self):
        """Views ``(request)`` and ``(context, request)``, and view methods ``(self)``.

        A view method uses ``self.request``; on an object without one it is
        cached as a plain method, keyed by its class.
        """
        as_method = super().wrapper() if self.key is not None else None
        call = self.call

        def request_of(args):
            return getattr(args[0], 'request', None) if as_method else args[-1]

        if as_method is None:
            def cached_view(*args):
                return call(args, args[-1])
        else:
            def cached_view(*args):
                request = request_of(args)
                if request is None:
                    return as_method(*args)
                return call(args, request)

        def invalidate(*args):
            """Drop the entry of this request in the current app's region."""
            request = request_of(args)
            if request is None:
                return as_method.invalidate(*args)
            self.forget(request)

        def refresh(*args):
            """Run the view again for this request, store and return its result."""
            request = request_of(args)
            if request is None:
                return as_method.refresh(*args)
            return self.call(args, request, force=True)

        # Pyramid reads the parameters to call (request) or (context, request).
        cached_view.__signature__ = inspect.signature(self.func)
        return self.attach_api(cached_view, invalidate, refresh)


def _registry_of(request):
    """The request's registry; a request made up outside the router
    (``Request.blank``) gets the current one, as ``prepare()`` would give it."""
    registry = getattr(request, 'registry', None)
    if registry is None:
        registry = request.registry = get_current_registry()
    return registry


def _parameter_name(pair):
    return pair.split('=', 1)[0]


#: How many request keys of views without ``vary`` and ``per_user`` are
#: remembered, and the longest remembered.
VIEW_MEMO_SIZE = 1024
VIEW_MEMO_TEXT = 1024


def _request_parts(route, scheme, host, script, path, query):
    """``(route, url, pairs)``: what a request key holds, in key order.

    Query pairs are sorted by name (repeated names keep their order).
    """
    pairs = tuple(sorted(query.split('&'), key=_parameter_name)) if query else ('',)
    return route, '%s://%s%s%s' % (scheme, host, script, path), pairs


def _plain_key(*where):
    """Key text of a request to a view without ``vary`` and ``per_user``.

    It is what encode_tuple() makes of the parts (strings and None), in one
    call.
    """
    return ascii(_request_parts(*where))


@functools.lru_cache(maxsize=VIEW_MEMO_SIZE)
def _remembered_key(*where):
    """:func:`_plain_key`, remembered: writing it costs more than the rest of a hit.

    The parts are strings (the route name may be None), so equal parts
    always make the same key.  Longer keys are not remembered.
    """
    if sum(map(len, where[1:])) > VIEW_MEMO_TEXT:
        raise NotMemoized
    return _plain_key(*where)


def _identified(request, environ, registry):
    """True for a request with an identity: an Authorization header or a user id."""
    if 'HTTP_AUTHORIZATION' in environ:
        return True
    # registry.queryUtility(ISecurityPolicy), minus a call: no policy, no user.
    if registry.utilities.lookup((), ISecurityPolicy) is None:
        return False
    return request.authenticated_userid is not None


def _route_name(request, state, registry):
    """The name of the route ``request`` matched, routing it if it was not.

    Requests made up outside the router (``Request.blank(url)`` given to
    ``invalidate``) are matched against the app's routes here.
    """
    route = state.get('matched_route')
    if route is None:
        mapper = registry.queryUtility(IRoutesMapper)
        if mapper is not None:
            route = mapper(request)['route']
    return None if route is None else route.name


def _response_storable(response):
    """True for a 200 response without cookies and not private or no-store."""
    if response.status_code != 200 or 'Set-Cookie' in response.headers:
        return False
    directives = response.headers.get('Cache-Control', '').lower().split(',')
    names = {directive.split('=', 1)[0].strip() for directive in directives}
    return not names & {'private', 'no-store'}


def _view_entry(request, value, user, probed=False):
    """What to store for a view's result, or NOT_STORED.

    Responses are stored as status, headers and body; other results (for a
    renderer) with the status and headers of ``request.response`` if the
    view touched it.  Nothing is stored when the response sets a cookie, is
    not a 200, is private or no-store, or when the session was used and the
    key has no user.  ``probed``: the session was loaded only to look for
    the user; it counts as used once it holds anything.
    """
    session = request.__dict__.get('session')
    if session is not None and user is None and not (probed and not len(session)):
        return NOT_STORED  # the result may show this visitor's session
    if isinstance(value, WebObResponse):
        if not _response_storable(value):
            return NOT_STORED
        body = value.body
        headers = [(name, text) for name, text in value.headerlist
                   if name.lower() not in _NOT_REPLAYED]
        headers.append(('Content-Length', str(len(body))))
        return ('response', value.status, headers, body)
    response = request.__dict__.get('response')
    if response is None:
        return ('value', value, None)
    if not _response_storable(response):
        return NOT_STORED
    return ('value', value, (response.status, list(response.headerlist)))


def _replay(request, stored):
    """Turn a stored view entry back into the view's result."""
    if stored[0] == 'response':
        _, status, headers, body = stored
        # The stored headers have the body's Content-Length: given the body
        # as app_iter, webob keeps them as they are instead of redoing it.
        headerlist = list(map(tuple, headers))
        if status == _OK:  # the default: parsing a status line costs as much again
            return Response(app_iter=[body], headerlist=headerlist)
        return Response(app_iter=[body], status=status, headerlist=headerlist)
    _, value, response_state = stored
    if response_state is not None:
        response = request.response
        response.status = response_state[0]
        response.headerlist = [tuple(pair) for pair in response_state[1]]
    return value
