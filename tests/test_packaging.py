"""The installed distribution: version, licence and type-hint metadata."""
import importlib.metadata
import os
import typing

from pyramid.config import Configurator

import pyramid_beaker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_version_is_the_distribution_version():
    assert pyramid_beaker.__version__ == importlib.metadata.version('pyramid_beaker')


def test_licence_metadata():
    metadata = importlib.metadata.metadata('pyramid_beaker')
    assert metadata['License-Expression'] == 'BSD-3-Clause-Modification'
    assert metadata.get_all('License-File') == ['LICENSE.txt']
    with open(os.path.join(ROOT, 'LICENSE.txt'), encoding='utf-8') as f:
        assert 'If any files are modified' in f.read()


def test_the_package_declares_its_type_hints():
    package_dir = os.path.dirname(pyramid_beaker.__file__)
    assert os.path.isfile(os.path.join(package_dir, 'py.typed'))
    hints = typing.get_type_hints(pyramid_beaker.includeme)
    assert hints == {'config': Configurator, 'return': type(None)}
