"""Cache keys: pure functions, tested with plain values."""
import collections
import datetime
import decimal
import enum
import fractions
import uuid

import pytest

from pyramid_beaker.keys import KeyMaker, encode, encode_owner, fit


def key_of(func, *args, **kw):
    return KeyMaker(func).key(args, kw)


def two(a, b):
    pass


def with_defaults(a, b=2, *, c=None):
    pass


def variadic(a, *rest, **options):
    pass


def test_literal_arguments_key_as_a_tuple_literal():
    assert key_of(two, 1, 'x') == "(1, 'x')"
    assert key_of(two, None, b'\x00') == "(None, b'\\x00')"


@pytest.mark.parametrize('left, right', [
    ((1, 2), ('1', '2')),
    (('a b', 'c'), ('a', 'b c')),
    ((None, 1), ('None', 1)),
    ((1, 2), (1.0, 2)),
    ((True, 2), (1, 2)),
    (('a,b', 'c'), ('a', 'b,c')),
    (("a', 'b", 'c'), ('a', "b', 'c")),
    ((b'x', 1), ('x', 1)),
    (((1, 2), 3), ([1, 2], 3)),
    ((frozenset({1}), 1), ({1}, 1)),
])
def test_calls_with_different_arguments_never_share_a_key(left, right):
    assert key_of(two, *left) != key_of(two, *right)


def test_positional_keyword_and_default_arguments_share_a_key():
    expected = key_of(with_defaults, 1, 2)
    assert key_of(with_defaults, 1) == expected
    assert key_of(with_defaults, 1, b=2) == expected
    assert key_of(with_defaults, a=1, b=2, c=None) == expected
    assert key_of(with_defaults, 1, 3) != expected


def test_keyword_order_and_variadic_arguments():
    assert key_of(variadic, 1, x=1, y=2) == key_of(variadic, 1, y=2, x=1)
    assert key_of(variadic, 1, 2, 3) != key_of(variadic, 1, (2, 3))
    assert key_of(variadic, 1, 2) != key_of(variadic, 1, rest=2)


def test_fast_and_slow_paths_agree():
    maker = KeyMaker(two)
    for args in [(1, 2), ('é', None), ((1,), [2]), (decimal.Decimal('1'), 2)]:
        assert maker.key(args, {}) == maker.slow(args, {})


class Small(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


def test_memoized_keys_stay_typed():
    """The memo of recent keys never gives equal values of other types one key."""
    maker = KeyMaker(two)
    calls = [(1, 2), (True, 2), (1.0, 2), (Small.ONE, 2), (1, 2), (True, 2),
             (0.0, 2), (-0.0, 2), (0.0, 2), ('1', '2'), (Text('1'), '2'),
             ('1', '2'), (b'1', '2'), ((1,), 2), ((True,), 2), ([1], 2), (1, 2)]
    for args in calls + calls:
        assert maker.key(args, {}) == maker.slow(args, {}), args
    assert maker.key((0.0, 2), {}) != maker.key((-0.0, 2), {})


def test_memoized_keys_follow_the_signature():
    maker = KeyMaker(with_defaults)
    for _ in range(2):
        assert maker.key((1,), {}) == maker.key((1, 2), {}) == '(1, 2, None)'
    with pytest.raises(TypeError):
        KeyMaker(two).key((1, 2, 3), {})


def test_a_call_that_does_not_fit_the_signature_raises_typeerror():
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        key_of(two, 1)


def test_keys_are_ascii():
    key = key_of(two, 'café', '日本')
    assert key.isascii()
    assert key != key_of(two, 'cafe', '日本')


def test_ignored_parameters_are_left_out():
    def lookup(db, name):
        pass

    maker = KeyMaker(lookup, ignore=('db',))
    assert maker.key((object(), 'x'), {}) == maker.key((object(), 'x'), {})
    assert maker.key((None, 'x'), {}) == "('x',)"


def test_ignoring_an_unknown_parameter_is_an_error():
    with pytest.raises(TypeError, match=r"'dbs', which is not a parameter of "
                                        r"tests.test_keys.two"):
        KeyMaker(two, ignore=('dbs',))


def test_containers_are_keyed_by_content_sets_and_dicts_sorted():
    assert encode({'b': 1, 'a': [2, (3,)]}) == "{'a': [2, (3,)], 'b': 1}"
    assert encode({3, 1, 2}) == encode({2, 3, 1})
    assert encode(frozenset()) != encode(set())
    assert encode({'a': 1}) != encode([('a', 1)])


class Colour(enum.Enum):
    RED = 1


class Flavour(enum.Enum):
    RED = 1


def test_value_types_and_enums():
    assert encode(datetime.date(2026, 11, 22)) == 'datetime.date(2026, 11, 22)'
    assert encode(datetime.datetime(2026, 11, 22)) != encode(datetime.date(2026, 11, 22))
    assert encode(decimal.Decimal('1.10')) == "Decimal('1.10')"
    assert encode(uuid.UUID(int=1)) == "UUID('00000000-0000-0000-0000-000000000001')"
    assert encode(fractions.Fraction(1, 3)) == 'Fraction(1, 3)'
    assert encode(Colour.RED) == '@tests.test_keys.Colour.RED'
    assert encode(Colour.RED) != encode(Flavour.RED)
    assert encode(int) == '<class builtins.int>'


Point = collections.namedtuple('Point', 'x y')


class Name(str):
    pass


def test_subclasses_of_keyable_types_are_tagged_with_their_class():
    assert encode(Point(1, 2)) == '@tests.test_keys.Point((1, 2))'
    assert encode(Point(1, 2)) != encode((1, 2))
    assert encode(Name('x')) == "@tests.test_keys.Name('x')"


class User:
    def __init__(self, user_id):
        self.user_id = user_id

    def __cache_key__(self):
        return self.user_id


class Group(User):
    pass


def test_deliberate_keys_are_tagged_with_the_class():
    assert encode(User(7)) == '@tests.test_keys.User(7)'
    assert encode(User(7)) == encode(User(7))
    assert encode(User(7)) != encode(Group(7))
    assert encode(User(7)) != encode(7)


def test_objects_without_a_stable_key_raise_typeerror_naming_the_argument():
    def report(user):
        pass

    with pytest.raises(TypeError) as info:
        KeyMaker(report).key((object(),), {})
    message = str(info.value)
    assert "argument 'user' of tests.test_keys" in message
    assert "'object' objects have no stable key" in message
    assert '__cache_key__' in message
    assert ' at 0x' not in message


def test_unkeyable_values_inside_containers_raise_too():
    with pytest.raises(TypeError, match="'function' objects have no stable key"):
        encode([1, {'a': lambda: None}])


def test_method_owners_are_keyed_by_class():
    class Service:
        pass

    class Special(Service):
        pass

    assert encode_owner(Service(), 'self') == encode_owner(Service(), 'self')
    assert encode_owner(Service(), 'self') != encode_owner(Special(), 'self')
    assert encode_owner(Service, 'cls') != encode_owner(Special, 'cls')
    assert encode_owner(User(1), 'self') != encode_owner(User(2), 'self')


def test_long_keys_are_hashed_and_cannot_meet_short_ones():
    short = key_of(two, 'a', 'b')
    assert fit(short, 250) == short
    long_key = key_of(two, 'x' * 300, 'b')
    hashed = fit(long_key, 250)
    assert hashed.startswith('#') and len(hashed) == 65
    assert hashed != fit(key_of(two, 'x' * 300, 'c'), 250)
    assert fit(short, 5).startswith('#')
