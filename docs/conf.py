"""Sphinx configuration for the pyramid_beaker documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors), as ``tox -e lint`` and ``.ci/run`` do.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyramid_beaker  # noqa: E402

project = 'pyramid_beaker'
author = 'Pylons Project'
copyright = '2010-2026, the pyramid_beaker contributors'
version = release = pyramid_beaker.__version__

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.viewcode']
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
# The README is included in usage.rst; its local table of contents is not
# wanted twice.
exclude_patterns = ['_build']
master_doc = 'index'

try:
    import pylons_sphinx_themes
except ImportError:  # pragma: no cover - the docs extra is not installed
    html_theme = 'alabaster'
else:
    html_theme = 'pyramid'
    html_theme_path = pylons_sphinx_themes.get_html_themes_path()
    html_theme_options = {'github_url': 'https://github.com/Pylons/pyramid_beaker'}
html_title = 'pyramid_beaker %s' % release
