"""beaker_shop: the pyramid_beaker example application.

Install it next to pyramid_beaker and serve it::

    pip install -e . -e examples
    pserve examples/development.ini
"""
from setuptools import find_packages, setup

setup(
    name='beaker_shop',
    version='1.0.dev0',
    description='A small shop showing pyramid_beaker sessions and cache regions',
    classifiers=[
        'Framework :: Pyramid',
        'Programming Language :: Python :: 3',
        'Private :: Do Not Upload',
    ],
    license='BSD-derived',
    packages=find_packages(include=['beaker_shop', 'beaker_shop.*']),
    package_data={'beaker_shop': ['templates/*.jinja2', 'static/*.css']},
    zip_safe=False,
    python_requires='>=3.10',
    install_requires=[
        'pyramid_beaker',
        'pyramid_jinja2 >= 2.10',  # the templates; 2.10 supports Jinja2 3
        'waitress',  # the server named in development.ini and production.ini
        'plaster_pastedeploy',  # lets pserve read the ini files
    ],
    extras_require={
        'redis': ['pyramid_beaker[redis]'],  # production.ini stores sessions in Redis
    },
    entry_points={
        'paste.app_factory': ['main = beaker_shop:main'],
    },
)
