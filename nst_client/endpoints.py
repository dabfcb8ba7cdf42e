"""Where an engine listens, read from its endpoint: a tcp:// host and port, whether it is on
this machine (no CURVE needed, and an engine there may be started on demand), an ipc:// path.
Standard library only; the daemon's bind policy and the clients' launcher read it alike."""

from __future__ import annotations

import ipaddress


def tcp_host_port(endpoint: str) -> tuple[str, str] | None:
    """(host, port) of a tcp:// endpoint, brackets off an IPv6 host (port "" when absent)."""
    if not endpoint.startswith("tcp://"):
        return None
    hostport = endpoint[len("tcp://") :]
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return host.strip("[]"), port


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (no CURVE needed; an
    engine there may be started on demand)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    tcp = tcp_host_port(endpoint)
    if tcp is None:
        return False
    host = tcp[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: may face the network


def ipc_path(endpoint: str) -> str | None:
    """The socket path of an ipc:// endpoint ("@name" is Linux's abstract namespace)."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://") :]
    return "\0" + path[1:] if path.startswith("@") else path
