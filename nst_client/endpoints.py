"""Where an engine listens, read from its endpoint: a tcp:// host and port, whether it is on
this machine (an engine there may be started on demand, and is served with the user's own
keys on a loopback port), an ipc:// path, and which user's process listens there. Standard
library only; the daemon's bind policy and the clients' launcher read it alike."""

from __future__ import annotations

import ipaddress
import os

#: The kernel's tables of TCP sockets (Linux): their uid column says whose a listener is.
TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
#: A TCP socket's state column for "listening".
LISTENING = "0A"


def tcp_host_port(endpoint: str) -> tuple[str, str] | None:
    """(host, port) of a tcp:// endpoint, brackets off an IPv6 host (port "" when absent)."""
    if not endpoint.startswith("tcp://"):
        return None
    hostport = endpoint[len("tcp://") :]
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return host.strip("[]"), port


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (an engine there may be
    started on demand; no keys of an administrator are needed)."""
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


def is_loopback_tcp(endpoint: str) -> bool:
    """True for tcp:// on a loopback address: an engine there is served with the user's local
    CURVE keys (keyfiles.local_keys), since every user of the machine can reach it."""
    return endpoint.startswith("tcp://") and is_local_endpoint(endpoint)


def ipc_path(endpoint: str) -> str | None:
    """The socket path of an ipc:// endpoint ("@name" is Linux's abstract namespace)."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://") :]
    return "\0" + path[1:] if path.startswith("@") else path


def listener_uid(endpoint: str) -> int | None:
    """The uid of the process that listens at a local endpoint, where the system says: the
    kernel's TCP tables (Linux) for tcp://, the socket file's owner for ipc://; None when
    nothing listens or it cannot be told (another system, Linux's abstract namespace)."""
    path = ipc_path(endpoint)
    if path is not None:
        if path.startswith("\0"):
            return None
        try:
            return os.stat(path).st_uid
        except OSError:
            return None
    tcp = tcp_host_port(endpoint)
    if tcp is None or not tcp[1].isdigit():
        return None
    port = int(tcp[1])
    for table in TCP_TABLES:
        try:
            with open(table, encoding="ascii") as rows:
                lines = rows.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[3] == LISTENING:
                if int(fields[1].rpartition(":")[2], 16) == port:
                    return int(fields[7])
    return None
