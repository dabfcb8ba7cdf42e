"""The NST product's client side: everything outside the daemon that talks to it.

Importable by the editors' bundled Python: the standard library only, with pyzmq and msgpack
used when present (else the bridge). `nst install-plugin` copies this package into each
plug-in as it is, so `__version__` travels with it and a plug-in can tell when it is stale.

The definitions every side shares (the engine and the daemon import these, and nothing
else of this package; each imports only the others):
- `params`: every job parameter, defined once (names, types, ranges, defaults, words)
- `protocol`: message types, builders and framing (protocol v1, docs/protocol.md)
- `endpoints`: where an engine listens (tcp host and port, local or not, ipc path)
- `layouts`: the wire pixel layout and the editors'
- `progress`: one fraction, text and ETA for a running job; durations in words
- `strength`: the user's 0..100 strength and its style weight
- `engine_words`: an engine's device and precision in plain words

The client proper:
- `job`: the one job path of every client (settings -> engine on demand -> submit -> follow),
  its typed events and its words for every failure
- `client`: the Client; `errors`: what can go wrong; `transports`: ZeroMQ, or the bridge
  (`bridge` and `pipe`: the pipe relay for editors whose Python lacks pyzmq)
- `launcher`: the local engine started on demand, its state in plain words
- `settings`: the plug-in config file, the environment and what a run is given (one
  precedence)
"""

#: The product's version (pyproject reads it from here): the one place it is written.
__version__ = "0.1.0"
