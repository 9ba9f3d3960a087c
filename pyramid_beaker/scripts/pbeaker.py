"""``pbeaker``: look at and maintain an app's sessions and cache regions.

It loads the app from its ini file, as ``pshell`` and ``proutes`` do, and
works on what the app configured::

    pbeaker development.ini show
    pbeaker development.ini purge-sessions
    pbeaker development.ini clear-region long_term
    pbeaker development.ini stats

Failures (an ini file that cannot be loaded, an unknown region, a backend
that cannot be reached) print one line on stderr and exit with status 1;
bad command lines exit with status 2.  Output cut short by its reader
(``pbeaker app.ini show | head``) ends quietly with status 1.
"""
import argparse
import json
import os
import sys
import textwrap

from pyramid.exceptions import ConfigurationExecutionError
from pyramid.interfaces import ISessionFactory
from pyramid.paster import bootstrap
from pyramid.scripts.common import parse_vars

from ..binding import region_bindings
from ..cache import get_region, regions
from ..cache_stats import FIELDS, SHARE_INTERVAL, shared_stats
from ..session import SessionFactory
from ..settings import masked

EXIT_OK = 0
EXIT_ERROR = 1
#: Purges of more sessions than this draw a progress bar (on a terminal).
PROGRESS_THRESHOLD = 1000
SESSION_CATEGORY = 'session factory'
REGION_CATEGORY = 'beaker cache regions'
FUNCTION_CATEGORY = 'beaker cached functions'

DESCRIPTION = """\
Show, purge and clear the Beaker sessions and cache regions of the app
configured in CONFIG_URI (an ini file, optionally with #section).

commands:
  show                 print the effective session and cache-region
                       configuration (secrets masked)
  purge-sessions       delete stored sessions idle for longer than the
                       session timeout (file, dbm and database stores)
  stats                print what the running app's cached functions did
                       (hits, misses, stores...), per region and function
  clear-region NAME    delete every entry that the app's cached functions
                       keep in the cache region NAME

Variables for the ini file may follow the command: pbeaker app.ini show
http_port=8080.  Exit status: 0 on success, 1 on failure, 2 on a bad
command line.
"""


class CommandError(Exception):
    """A failure reported as a single line on stderr."""


def main(argv=None, quiet=False):
    """Run ``pbeaker``; return the exit status."""
    command = PBeakerCommand(sys.argv if argv is None else argv, quiet)
    try:
        status = command.run()
        command.stdout.flush()  # a closed pipe shows here when stdout is buffered
        return status
    except BrokenPipeError:
        # The reader went away (``| head``): stop writing, say nothing, and
        # keep the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_ERROR


def describe(exc):
    """One line naming ``exc``: its type and the first line of its message."""
    if isinstance(exc, ConfigurationExecutionError):
        exc = exc.evalue
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return '%s: %s' % (type(exc).__name__, lines[0])


def as_text(value):
    """Format an option value the way it would be written in an ini file."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple, frozenset, set)):
        return ', '.join(as_text(item) for item in value) or '-'
    return str(value)


def effective_session_options(factory):
    """The options of a session factory with the defaults it applies filled in.

    ``refresh_interval`` is the factory's computed interval; an unset
    ``lock_dir`` of a store that keeps files is its ``data_dir``.
    """
    options = dict(factory.options)
    options['refresh_interval'] = factory.refresh_interval
    if options.get('lock_dir') is None and options.get('data_dir'):
        options['lock_dir'] = options['data_dir']
    return options


def format_counts(counts):
    """One line for the counters of :mod:`pyramid_beaker.cache_stats`."""
    looked_up = counts['hits'] + counts['misses']
    rate = '%.0f%%' % (100.0 * counts['hits'] / looked_up) if looked_up else '-'
    errors = sum(counts[name] for name in FIELDS if name.endswith('_errors'))
    return ('hits %d, misses %d (hit rate %s), stores %d, lock waits %d (%.3f s), '
            'errors %d' % (counts['hits'], counts['misses'], rate, counts['stores'],
                           counts['lock_waits'], counts['lock_wait_time'], errors))


class ProgressBar:
    """Draws ``done/total`` on a terminal, for large totals only."""

    width = 30

    def __init__(self, stream, label, threshold=PROGRESS_THRESHOLD):
        self.stream = stream
        self.label = label
        self.threshold = threshold
        self.drawn = False

    def __call__(self, done, total):
        if total <= self.threshold:
            return
        filled = self.width * done // total
        self.stream.write('\r%s [%s%s] %d/%d' % (
            self.label, '#' * filled, '.' * (self.width - filled), done, total))
        self.stream.flush()
        self.drawn = True

    def finish(self):
        if self.drawn:
            self.stream.write('\n')
            self.stream.flush()
            self.drawn = False


class PBeakerCommand:
    """The ``pbeaker`` command line: parse, load the app, run one command."""

    def __init__(self, argv, quiet=False, stdout=None, stderr=None):
        self.argv = list(argv)
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    # -- plumbing -----------------------------------------------------------

    def out(self, text=''):
        if not self.quiet:
            print(text, file=self.stdout)

    def fail(self, message):
        print('pbeaker: error: %s' % message, file=self.stderr)
        return EXIT_ERROR

    @staticmethod
    def parser():
        parser = argparse.ArgumentParser(
            prog='pbeaker',
            description=textwrap.dedent(DESCRIPTION),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument('--traceback', action='store_true',
                            help='show the full traceback of unexpected errors')
        parser.add_argument('config_uri', metavar='CONFIG_URI',
                            help='the app\'s ini file, e.g. development.ini')
        commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                         required=True)
        show = commands.add_parser('show', help='print the effective configuration')
        show.add_argument('--json', action='store_true',
                          help='print JSON instead of text')
        commands.add_parser('purge-sessions', help='delete expired sessions')
        stats = commands.add_parser('stats', help='print the cache statistics')
        stats.add_argument('--json', action='store_true',
                           help='print JSON instead of text')
        clear = commands.add_parser('clear-region', help='empty one cache region')
        clear.add_argument('region', metavar='NAME', help='the region to clear')
        for command in commands.choices.values():
            # default=[]: optional, also in argparse's "required" message.
            command.add_argument('config_vars', nargs='*', default=[],
                                 metavar='NAME=VALUE', help='variables for the ini file')
        return parser

    def run(self):
        parser = self.parser()
        args = parser.parse_args(self.argv[1:])  # exits 2 when bad
        try:
            options = parse_vars(args.config_vars)
        except ValueError as exc:
            parser.error(str(exc))  # exits 2
        try:
            env = self.load(args.config_uri, options, args.traceback)
        except CommandError as exc:
            return self.fail(str(exc))
        try:
            return self.dispatch(env['registry'], args)
        except CommandError as exc:
            return self.fail(str(exc))
        except BrokenPipeError:
            raise
        except KeyboardInterrupt:
            return self.fail('interrupted')
        except Exception as exc:
            if args.traceback:
                raise
            return self.fail('unexpected %s (run with --traceback for details)'
                             % describe(exc))
        finally:
            env['closer']()

    def dispatch(self, registry, args):
        if args.command == 'show':
            return self.show(registry, args.json)
        if args.command == 'stats':
            return self.stats(registry, args.json)
        if args.command == 'purge-sessions':
            return self.purge_sessions(registry)
        return self.clear_region(registry, args.region)

    def load(self, config_uri, options, show_traceback=False):
        """Load the app; return :func:`pyramid.paster.bootstrap`'s environment."""
        try:
            return bootstrap(config_uri, options=options)
        except KeyboardInterrupt:
            raise CommandError('interrupted') from None
        except Exception as exc:
            if show_traceback:
                raise
            raise CommandError('cannot load the app from %r: %s'
                               % (config_uri, describe(exc))) from None

    # -- show ---------------------------------------------------------------

    def show(self, registry, as_json=False):
        report = {
            'session': self.session_report(registry),
            'cache_regions': self.regions_report(registry),
        }
        if as_json:
            self.out(json.dumps(report, indent=2, default=repr))
        else:
            self.print_report(report)
        return EXIT_OK

    def session_report(self, registry):
        factory = registry.queryUtility(ISessionFactory)
        if factory is None:
            return None
        report = {'factory': self.describe_factory(registry, factory)}
        if isinstance(factory, SessionFactory):
            report['options'] = masked(effective_session_options(factory))
        return report

    @staticmethod
    def describe_factory(registry, factory):
        if not isinstance(factory, SessionFactory):
            name = getattr(factory, '__qualname__', None)
            if name is None:
                return repr(factory)
            return '%s.%s' % (getattr(factory, '__module__', '?'), name)
        title = 'pyramid_beaker, %s store' % factory.options['type']
        intr = registry.introspector.get(SESSION_CATEGORY, None)
        if intr is not None and intr.get('factory') is factory and intr.get('prefix'):
            title += ', settings %s*' % intr['prefix']
        return title

    @staticmethod
    def regions_report(registry):
        functions = {}
        for item in registry.introspector.get_category(FUNCTION_CATEGORY, ()):
            intr = item['introspectable']
            functions.setdefault(intr.get('region'), []).append({
                'name': intr.discriminator,
                'kind': 'view' if intr.get('view') else 'function',
                'namespace': intr.get('namespace'),
            })
        report = {}
        for name, region in sorted(regions(registry).items()):
            report[name] = {
                'options': masked(region.options),
                'cached': sorted(functions.get(name, []), key=lambda f: f['name']),
            }
        return report

    def print_report(self, report):
        session = report['session']
        if session is None:
            self.out('Session: none configured')
        else:
            self.out('Session: %s' % session['factory'])
            if 'options' not in session:
                self.out('  (not a pyramid_beaker session factory)')
            self.print_options(session.get('options', {}), '  ')
        self.out()
        found = report['cache_regions']
        if not found:
            self.out('Cache regions: none configured')
            return
        self.out('Cache regions:')
        for name, region in found.items():
            self.out('  %s' % name)
            self.print_options(region['options'], '    ')
            if region['cached']:
                self.out('    cached:')
            for function in region['cached']:
                self.out('      %s (%s, namespace %s)' % (
                    function['name'], function['kind'], function['namespace']))

    def print_options(self, options, indent):
        if not options:
            return
        width = max(len(name) for name in options)
        first = ['type'] if 'type' in options else []
        for name in first + sorted(set(options) - set(first)):
            self.out('%s%-*s  %s' % (indent, width, name, as_text(options[name])))

    # -- stats --------------------------------------------------------------

    def stats(self, registry, as_json=False):
        try:
            report = shared_stats(registry)
        except Exception as exc:
            raise CommandError('cannot read the cache statistics: %s'
                               % describe(exc)) from None
        if as_json:
            self.out(json.dumps(report, indent=2))
            return EXIT_OK
        if not report['regions']:
            self.out('Cache regions: none configured')
            return EXIT_OK
        self.out('Cache statistics, as shared by the app processes every %d s:'
                 % SHARE_INTERVAL)
        width = max([len(name) for name in report['functions']] + [20])
        for name, totals in report['regions'].items():
            self.out()
            if totals is None:
                self.out('%s: kept inside each app process; read them there with '
                         'pyramid_beaker.stats(registry)' % name)
                continue
            self.out('%s: %s' % (name, format_counts(totals)))
            for function, counts in report['functions'].items():
                if counts['region'] == name:
                    self.out('  %-*s  %s' % (width, function, format_counts(counts)))
        return EXIT_OK

    # -- purge-sessions -----------------------------------------------------

    def purge_sessions(self, registry):
        factory = registry.queryUtility(ISessionFactory)
        if factory is None:
            raise CommandError('the app has no session factory')
        if not isinstance(factory, SessionFactory):
            raise CommandError('the app\'s session factory is not a pyramid_beaker '
                               'one: %r' % (factory,))
        store_type = factory.options['type']
        if factory.process_local:
            self.out('Nothing to purge: memory sessions live inside each app '
                     'process, which drops expired ones by itself.')
            return EXIT_OK
        progress = None
        if self.stderr.isatty():
            progress = ProgressBar(self.stderr, 'purging %s sessions' % store_type)
        try:
            count = factory.purge_expired(progress=progress)
        except NotImplementedError as exc:
            reason = str(exc) or '%s sessions expire by themselves' % store_type
            self.out('Nothing to purge: %s.' % reason)
            return EXIT_OK
        except KeyboardInterrupt:
            raise CommandError('interrupted') from None
        except Exception as exc:
            raise CommandError('cannot purge the %s sessions: %s'
                               % (store_type, describe(exc))) from None
        finally:
            if progress is not None:
                progress.finish()
        self.out('Deleted %d expired session%s (%s store, idle for more than %d s).'
                 % (count, '' if count == 1 else 's', store_type, factory.ttl))
        return EXIT_OK

    # -- clear-region -------------------------------------------------------

    def clear_region(self, registry, name):
        region = get_region(registry, name)
        if region is None:
            known = ', '.join(sorted(regions(registry))) or 'none'
            raise CommandError('the app has no cache region named %r (configured: %s)'
                               % (name, known))
        store_type = region.options.get('type')
        if region.process_local:
            raise CommandError(
                'cache region %r is kept in the memory of each app process, out '
                'of pbeaker\'s reach: restart the app to empty it' % name)
        namespaces = sorted({binding.namespace for binding in region_bindings(registry, name)})
        if not namespaces:
            self.out('Nothing to clear: no cached function of the app uses region %r.'
                     % name)
            return EXIT_OK
        for namespace in namespaces:
            try:
                region.namespace_manager(namespace).do_remove()
            except KeyboardInterrupt:
                raise CommandError('interrupted') from None
            except Exception as exc:
                raise CommandError('cannot clear cache region %r (%s): %s'
                                   % (name, store_type, describe(exc))) from None
        self.out('Cleared cache region %r: %d namespace%s (%s).' % (
            name, len(namespaces), '' if len(namespaces) == 1 else 's',
            ', '.join(namespaces)))
        return EXIT_OK


if __name__ == '__main__':  # python -m pyramid_beaker.scripts.pbeaker
    sys.exit(main())
