"""Items of the example project."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Product:
    """One product of the demo shop."""

    name: str
    price: str
    sku: str
    description: str
    url: str

    def missing_fields(self) -> list[str]:
        """Names of the fields left empty."""
        return [f.name for f in fields(self) if not getattr(self, f.name)]
