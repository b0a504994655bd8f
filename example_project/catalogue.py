"""The demo shop's products, shared by both demo sites (our own server and the Django one).

Standard library only: the Django site runs in a venv of its own, where the demo site's captcha
drawing (the ``captcha`` package, whose module name django-simple-captcha also takes) cannot load.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORY_NAMES = ("books", "music", "games", "tools", "garden", "kitchen", "toys", "sports")
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Vintage", "Modern", "Rugged", "Handmade", "Portable", "Silent")


@dataclass(frozen=True)
class Product:
    id: int
    category: str
    name: str
    price: str
    sku: str
    description: str


def category_names(count: int) -> list[str]:
    """``count`` distinct category slugs."""
    return [CATEGORY_NAMES[i] if i < len(CATEGORY_NAMES) else f"category-{i + 1}" for i in range(count)]


def build_catalogue(categories: int, items_per_category: int) -> dict[int, Product]:
    """The products, ids from 1, deterministic so that runs compare."""
    products = {}
    for c, category in enumerate(category_names(categories)):
        for i in range(items_per_category):
            pid = c * items_per_category + i + 1
            adjective = ADJECTIVES[pid % len(ADJECTIVES)]
            noun = category.rstrip("s").replace("-", " ")
            products[pid] = Product(
                id=pid,
                category=category,
                name=f"{adjective} {noun} no. {i + 1}",
                price=f"{5 + (pid * 37) % 200}.{(pid * 13) % 100:02d}",
                sku=f"{category[:3].upper()}-{pid:05d}",
                description=f"A {adjective.lower()} {noun} from our {category} range, item {pid} of the demo catalogue.",
            )
    return products
