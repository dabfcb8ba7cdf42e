"""The NST daemon: a warm VGG-19 behind a ZeroMQ ROUTER (protocol v1, docs/protocol.md).

In parts, each testable alone: `transport` (bind policy, CURVE, the one send), `requests`
(parsing and validation), `jobs` (Job, Scheduler), `runner` (the engine call: OOM retry,
progress, stats; no zmq), `server` (the socket loop and its dispatch table), `cli` (options,
`nst-daemon`). Only `runner`'s caller loads torch, when the model loads.
"""
