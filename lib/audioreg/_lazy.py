"""Lazy package attributes: submodules and re-exported names imported on first use.

``import audioreg`` (or ``audioreg.models``) stays cheap: torch, librosa and numba load
only when something that needs them is first touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping


def attach(package: str, submodules: Iterable[str], exports: Mapping[str, str] | None = None
           ) -> tuple[Callable[[str], object], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: its ``submodules``, and ``exports``
    (name -> submodule that defines it) as attributes of the package itself."""
    submodules, exports = tuple(submodules), dict(exports or {})

    def __getattr__(name: str):
        if name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        elif name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        importlib.import_module(package).__dict__[name] = value
        return value

    return __getattr__, [*submodules, *exports]
