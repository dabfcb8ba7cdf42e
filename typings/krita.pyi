# Krita's Python API (libkis) ships no type information; the plug-in's calls are checked by
# the unit tests against tests/unit/krita_standin.py and end to end in a real Krita.
from typing import Any

def __getattr__(name: str) -> Any: ...
