import os
import re

from setuptools import find_packages, setup

here = os.path.abspath(os.path.dirname(__file__))


def readfile(name):
    with open(os.path.join(here, name), encoding='utf-8') as f:
        return f.read()


def version():
    """The ``__version__`` of the package, its one source."""
    found = re.search(r"^__version__ = '([^']+)'$",
                      readfile('pyramid_beaker/__init__.py'), re.M)
    return found.group(1)


install_requires = [
    'pyramid >= 2.0',  # ISession without CSRF methods, SessionCSRFStoragePolicy
    'beaker >= 1.12',  # entry-point backend registry, samesite cookies
    'venusian >= 3.0',  # AttachInfo.codeinfo used for conflict reports
]
redis_requires = ['redis >= 4.2']  # redis.Redis.from_url, Lua scripts
memcached_requires = ['pymemcache >= 4.0']  # gets/cas with noreply=False
database_requires = [
    'sqlalchemy >= 2.0',  # Connection.execute(text(...)) with dict params
    'psycopg[binary] >= 3.1',  # the default PostgreSQL driver in URLs
]
mysql_requires = [
    'sqlalchemy >= 2.0',
    'pymysql >= 1.0',  # pure Python: installs everywhere, no client library
]
crypto_requires = ['cryptography >= 3.4']  # AESGCM for encrypted cookies
testing_requires = (
    [
        'pytest >= 7',
        'webtest >= 3.0',
        'waitress >= 2.1',
        'plaster_pastedeploy',
        'selenium >= 4.10',  # Service(executable_path=...) for chromedriver
        'hypothesis >= 6.0',  # property tests of the Cookie header
        'python-memcached',  # Beaker's ext:memcached writes old sessions in migration tests
        'pyramid_jinja2 >= 2.10',  # the example app's templates (tests/test_example.py)
        'pyramid_debugtoolbar >= 4.10',  # the toolbar panel's test
    ]
    + redis_requires
    + memcached_requires
    + database_requires
    + mysql_requires
    + crypto_requires
)
hiredis_requires = redis_requires + ['hiredis >= 2']  # redis-py's C parser: faster replies
benchmark_requires = ['dogpile.cache', 'pyramid_session_redis'] + hiredis_requires
docs_requires = [
    'sphinx >= 7',  # the docs build (-W) in lint and .ci/run
    'pylons-sphinx-themes',  # the theme of every Pylons project's docs
]
lint_requires = ['mypy >= 1.8'] + docs_requires

setup(
    name='pyramid_beaker',
    version=version(),
    description='Beaker sessions and cache regions for Pyramid',
    long_description=readfile('README.rst') + '\n\n' + readfile('CHANGES.rst'),
    long_description_content_type='text/x-rst',
    author='Pylons Project',
    author_email='pylons-discuss@googlegroups.com',
    maintainer='Pylons Project',
    maintainer_email='pylons-discuss@googlegroups.com',
    url='https://github.com/Pylons/pyramid_beaker',
    project_urls={
        'Documentation': 'https://docs.pylonsproject.org/projects/pyramid-beaker/en/latest/',
        'Changelog': 'https://github.com/Pylons/pyramid_beaker/blob/main/CHANGES.rst',
        'Issue Tracker': 'https://github.com/Pylons/pyramid_beaker/issues',
        'Source': 'https://github.com/Pylons/pyramid_beaker',
    },
    classifiers=[
        'Development Status :: 4 - Beta',
        'Framework :: Pyramid',
        'Intended Audience :: Developers',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3 :: Only',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'Typing :: Typed',
        'Topic :: Internet :: WWW/HTTP :: Session',
        'Topic :: Internet :: WWW/HTTP :: WSGI',
    ],
    keywords='pyramid beaker session cache redis memcached',
    # The Repoze Public License that Pylons projects use (LICENSE.txt).
    license_expression='BSD-3-Clause-Modification',
    license_files=['LICENSE.txt'],
    packages=find_packages(include=['pyramid_beaker', 'pyramid_beaker.*']),
    include_package_data=True,
    package_data={'pyramid_beaker': ['py.typed']},
    zip_safe=False,
    python_requires='>=3.10',
    install_requires=install_requires,
    extras_require={
        'redis': redis_requires,
        'hiredis': hiredis_requires,
        'memcached': memcached_requires,
        'database': database_requires,
        'mysql': mysql_requires,
        'crypto': crypto_requires,
        'testing': testing_requires,
        'benchmarks': testing_requires + benchmark_requires,
        'docs': docs_requires,
        'lint': lint_requires,
    },
    entry_points={
        'beaker.backends': [
            'pyramid_beaker.memory = pyramid_beaker.stores.memory:MemoryNamespaceManager',
            'pyramid_beaker.file = pyramid_beaker.stores.file:FileNamespaceManager',
            'pyramid_beaker.dbm = pyramid_beaker.stores.dbm:DBMNamespaceManager',
            'pyramid_beaker.redis = pyramid_beaker.stores.redis:RedisNamespaceManager',
            'pyramid_beaker.rediscluster = '
            'pyramid_beaker.stores.rediscluster:RedisClusterNamespaceManager',
            'pyramid_beaker.memcached = pyramid_beaker.stores.memcached:MemcachedNamespaceManager',
            'pyramid_beaker.database = pyramid_beaker.stores.database:DatabaseNamespaceManager',
        ],
        'console_scripts': ['pbeaker = pyramid_beaker.scripts.pbeaker:main'],
    },
)
