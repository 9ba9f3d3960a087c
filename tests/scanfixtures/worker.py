"""A worker process: an app with a shared region calls one slow cached function.

``python -m tests.scanfixtures.worker REGION TALLY GO`` builds the app whose
region ``short_term`` has the options in the JSON object REGION, prints
``ready``, waits until the file GO exists, calls
``services.tallied(TALLY, 0.5)`` and prints its result.
"""
import json
import os
import sys
import time

from . import services
from .apps import make_config


def main(region, tally, go):
    options = {'cache__short_term__' + name: value
               for name, value in json.loads(region).items()}
    config = make_config(app_name='worker', **options)
    config.begin()
    print('ready', flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    print(services.tallied(tally, 0.5), flush=True)


if __name__ == '__main__':
    main(*sys.argv[1:])
