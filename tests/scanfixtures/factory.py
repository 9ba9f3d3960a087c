"""Cached functions made by a factory: closures share one qualified name."""
from pyramid_beaker import cached_region


def make_price(rate, name=None):
    @cached_region('short_term', name=name)
    def price(amount):
        return amount * rate

    return price
