"""The product catalogue, fetched from a (pretend) slow supplier and cached.

:func:`load_products` is a service function cached in the ``long_term``
region: the first call asks the supplier, later calls (in any process
sharing the region) read the cache until the entry expires or someone calls
``load_products.invalidate()``.
"""
import dataclasses
import threading
import time

from pyramid_beaker import cached_region

#: Seconds the pretend supplier takes to answer.
SUPPLIER_DELAY = 0.1

_PRODUCTS = (
    ('beaker-250', 'Beaker, 250 ml', 450, 'Low-form borosilicate glass, graduated.'),
    ('flask-500', 'Erlenmeyer flask, 500 ml', 790, 'Narrow neck, for swirling.'),
    ('tubes-12', 'Test tubes, pack of 12', 620, '16 × 150 mm, rimless.'),
    ('pipette-10', 'Pipette, 10 ml', 380, 'Class A, with bulb.'),
    ('burner', 'Bunsen burner', 2450, 'Natural gas, with air regulator.'),
)


@dataclasses.dataclass(frozen=True)
class Product:
    id: str
    name: str
    price: int  # cents
    description: str


class Counter:
    """A thread-safe count, shown on the pages to make caching visible."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def add(self):
        with self._lock:
            self.count += 1


#: How often this process asked the supplier.
supplier_calls = Counter()


@cached_region('long_term')
def load_products():
    """Return the catalogue as ``{product id: Product}``; slow, so cached."""
    supplier_calls.add()
    time.sleep(SUPPLIER_DELAY)
    return {pid: Product(pid, name, price, text)
            for pid, name, price, text in _PRODUCTS}


def get_product(product_id):
    """Return one product or None."""
    return load_products().get(product_id)


def todays_offers(products):
    """Pick the offers of the day: a tenth off the two cheapest products."""
    cheapest = sorted(products.values(), key=lambda product: product.price)[:2]
    return [(product, product.price * 9 // 10) for product in cheapest]
