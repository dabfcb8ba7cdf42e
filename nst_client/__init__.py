"""The NST product's client side: everything outside the daemon that talks to it.

Importable by the editors' bundled Python: the standard library only, with pyzmq and msgpack
used when present (else the bridge). `nst install-plugin` copies this package into each
plug-in as it is, so `__version__` travels with it and a plug-in can tell when it is stale.

- `protocol`: message types, builders and framing (protocol v1, docs/protocol.md)
- `client`: the Client and its transports; `bridge`: the pipe relay for pyzmq-less editors
- `layouts`: the wire pixel layout and the editors' layouts
- `settings`: the plug-in config file with environment overrides
- `progress`: one fraction, text and ETA for a running job
- `strength`: the user's 0..100 strength and its style weight
"""

#: The product's version (pyproject reads it from here): the one place it is written.
__version__ = "0.1.0"
