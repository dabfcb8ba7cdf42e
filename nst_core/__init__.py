"""Neural style transfer after Gatys et al. (arXiv 1508.06576) on a pretrained VGG-19.

The engine: a leaf that imports nothing of the daemon, the launcher or the installers. Its
parameters are defined once in `nst_client.params` (pure Python, shared with every client);
`nst_core.errors` is pure Python too. The engine (and torch) load only when `stylize` and
friends are first used, so clients stay light.
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
    "StyleImage": "nst_core.styles",
    "OptimisationFailed": "nst_core.errors",
    "StyleParams": "nst_client.params",
    "make_params": "nst_client.params",
    "ParamError": "nst_client.params",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
