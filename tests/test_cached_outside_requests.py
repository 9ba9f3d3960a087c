"""Cached functions called where no request is active: scripts, threads, jobs.

With no app current, a call uses the binding of the app created last that
bound the function (Pyramid's own rule for ``bootstrap`` and ``pshell``).
"""
import gc
import logging

import pytest
import webtest

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config

pytestmark = pytest.mark.filterwarnings('error')


def runs(name):
    return services.CALLS[name]


def test_a_script_caches_after_the_app_is_made(caplog):
    config = make_config(app_name='script')
    config.make_wsgi_app()
    before = runs('exchange_rate')
    with caplog.at_level(logging.WARNING, logger='pyramid_beaker'):
        first = services.exchange_rate('SCR', 'IPT')
        assert services.exchange_rate('SCR', 'IPT') == first
    assert runs('exchange_rate') - before == 1
    assert not [r for r in caplog.records if 'runs uncached' in r.getMessage()]
    # ... and it is the app's own entry: the app, when current, hits it.
    assert in_app(config, services.exchange_rate, 'SCR', 'IPT') == first


def test_a_worker_thread_started_in_a_view_caches(config):
    config.add_settings(make_config().registry.settings)
    config.include('pyramid_beaker')
    config.add_route('in_thread', '/in_thread')
    config.scan('tests.scanfixtures.services')
    config.scan('tests.scanfixtures.threaded')
    app = webtest.TestApp(config.make_wsgi_app())
    before = runs('exchange_rate')
    body = app.get('/in_thread').json
    assert body['first'] == body['second']
    assert runs('exchange_rate') - before == 1


def test_invalidate_and_refresh_outside_a_request():
    make_config(app_name='outside')
    first = services.exchange_rate('INV', 'OUT')
    services.exchange_rate.invalidate('INV', 'OUT')
    second = services.exchange_rate('INV', 'OUT')
    assert second != first
    refreshed = services.exchange_rate.refresh('INV', 'OUT')
    assert refreshed not in (first, second)
    assert services.exchange_rate('INV', 'OUT') == refreshed


def test_the_app_created_last_wins_while_it_exists():
    older = make_config(app_name='older')
    newer = make_config(app_name='newer')
    older_value = in_app(older, services.app_label, 'last')
    newer_value = in_app(newer, services.app_label, 'last')
    assert (older_value[:6], newer_value[:6]) == ('older:', 'newer:')
    assert services.app_label('last') == newer_value  # a hit: nothing computed
    del newer
    gc.collect()
    assert services.app_label('last') == older_value


def test_an_app_that_did_not_bind_the_function_still_runs_it_uncached(caplog):
    make_config(app_name='binder')
    other = make_config(scan=(), app_name='other')
    before = runs('exchange_rate')
    in_app(other, services.exchange_rate, 'NOT', 'MINE')
    in_app(other, services.exchange_rate, 'NOT', 'MINE')
    assert runs('exchange_rate') - before == 2
