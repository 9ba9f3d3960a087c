"""The cache layer's modules import each other in one direction only."""
import ast
import importlib
import os

import pyramid_beaker

MODULES = ('binding', 'cache', 'cached_functions', 'cached_views', 'decorator',
           'directives', 'keys')
PACKAGE = os.path.dirname(pyramid_beaker.__file__)


def imports_of(name):
    """The package modules ``name`` imports, at the top or inside functions."""
    with open(os.path.join(PACKAGE, name + '.py'), encoding='utf-8') as source:
        tree = ast.parse(source.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split('.')[0])
    return found & set(MODULES)


def test_the_cache_modules_have_no_import_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    done, visiting = set(), []

    def visit(name):
        assert name not in visiting, 'import cycle: %s' % ' -> '.join(visiting + [name])
        if name in done:
            return
        visiting.append(name)
        for other in graph[name]:
            visit(other)
        visiting.pop()
        done.add(name)

    for name in MODULES:
        visit(name)


def test_each_concern_has_its_module():
    decorator = importlib.import_module('pyramid_beaker.decorator')
    binding = importlib.import_module('pyramid_beaker.binding')
    views = importlib.import_module('pyramid_beaker.cached_views')
    directives = importlib.import_module('pyramid_beaker.directives')
    assert pyramid_beaker.cached_region is decorator.cached_region
    assert binding.Binding.__module__ == 'pyramid_beaker.binding'
    assert views.CachedView.__module__ == 'pyramid_beaker.cached_views'
    assert directives.add_cached_function.__module__ == 'pyramid_beaker.directives'
