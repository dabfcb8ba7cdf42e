"""Neural style transfer after Gatys et al. (arXiv 1508.06576) on a pretrained VGG-19.

`nst_core.params` and `nst_core.errors` are pure Python; the engine (and torch) load only
when `stylize` and friends are first used, so clients stay light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "stylize",
    "StyleParams",
    "make_params",
    "ParamError",
    "StylizeCancelled",
    "StyleImage",
    "OptimisationFailed",
]

_LAZY = {
    "stylize": "nst_core.engine",
    "StylizeCancelled": "nst_core.errors",
    "StyleImage": "nst_core.engine",
    "OptimisationFailed": "nst_core.errors",
    "StyleParams": "nst_core.params",
    "make_params": "nst_core.params",
    "ParamError": "nst_core.params",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
