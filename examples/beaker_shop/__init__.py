"""beaker_shop: a small Pyramid shop showing pyramid_beaker's features.

- sessions in files (development.ini) or Redis (production.ini);
- login and logout through CSRF-protected forms, with a new session id at
  login and the session deleted at logout;
- flash messages and a basket kept in the session;
- a cached service function and a cached view, in two cache regions;
- an exception view whose session changes are kept;
- pages rendered with Jinja2 templates (pyramid_jinja2), autoescaped.
"""
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from .security import ShopSecurityPolicy

#: The secrets in production.ini start with this; the app refuses them.
PLACEHOLDER = 'CHANGE-ME'
SECRET_SETTINGS = ('session.secret', 'cache.secret')


def check_secrets(settings):
    """Refuse to run with the placeholder secrets of production.ini."""
    for key in SECRET_SETTINGS:
        value = settings.get(key) or ''
        if value.startswith(PLACEHOLDER):
            raise ConfigurationError(
                '"%s" still holds the placeholder %r: set it to a long random '
                'value, e.g. the output of: python3 -c "import secrets; '
                'print(secrets.token_urlsafe(32))"' % (key, value))


def includeme(config):
    """Routes, security and views of the shop (needs pyramid_beaker)."""
    config.include('pyramid_beaker')
    config.include('pyramid_jinja2')
    config.add_static_view('static', 'beaker_shop:static')
    config.set_security_policy(ShopSecurityPolicy())
    # Every POST must carry the session's CSRF token.
    config.set_default_csrf_options(require_csrf=True)
    config.add_route('home', '/')
    config.add_route('offers', '/offers')
    config.add_route('login', '/login')
    config.add_route('logout', '/logout')
    config.add_route('basket', '/basket')
    config.add_route('basket_add', '/basket/add')
    config.add_route('basket_remove', '/basket/remove')
    config.add_route('checkout', '/checkout')
    config.add_route('catalog_refresh', '/catalog/refresh')
    config.scan('.catalog')
    config.scan('.views')


def main(global_config, **settings):
    """The WSGI app, as made by ``pserve development.ini``."""
    check_secrets(settings)
    with Configurator(settings=settings) as config:
        config.include(includeme)
    return config.make_wsgi_app()
