"""A worker process: an app with a Redis region calls one slow cached function.

``python -m tests.scanfixtures.worker URL PREFIX TALLY GO`` builds the app,
prints ``ready``, waits until the file GO exists, calls
``services.tallied(TALLY, 0.5)`` and prints its result.
"""
import os
import sys
import time

from . import services
from .apps import make_config


def main(url, prefix, tally, go):
    config = make_config(app_name='worker', cache__short_term__type='ext:redis',
                         cache__short_term__url=url,
                         cache__short_term__key_prefix=prefix,
                         cache__short_term__secret='worker-secret-0123')
    config.begin()
    print('ready', flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    print(services.tallied(tally, 0.5), flush=True)


if __name__ == '__main__':
    main(*sys.argv[1:])
