"""What can go wrong between a client and the daemon, as exceptions every part of the client
raises and catches alike. Standard library only."""

from __future__ import annotations

from . import endpoints

#: Where a user sets the CURVE keys, for messages.
CURVE_SETTINGS = (
    "curve_server_key/curve_client_cert (nst: --curve-server-key/--curve-client-cert; "
    "env: NST_CURVE_SERVER_KEY/NST_CURVE_CLIENT_CERT)"
)


class DaemonUnavailable(ConnectionError):
    """No daemon answered within the timeout."""


class ForeignListener(DaemonUnavailable):
    """What listens at the engine's local address is another user's process: nothing is sent
    to it."""


class DaemonError(RuntimeError):
    """The daemon answered a request with an `error` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JobCancelled(RuntimeError):
    """The job ended with `cancelled`."""


class JobAbandoned(JobCancelled):
    """A cancelled job the engine did not end within CANCEL_GRACE_S: the client stopped
    waiting for it (the editor is free again)."""


def unavailable(endpoint: str, timeout_s: float) -> DaemonUnavailable:
    if endpoints.is_local_endpoint(endpoint):
        advice = (
            f"start it with `nst daemon start --endpoint {endpoint}` (the program nst-daemon), "
            "or check the endpoint in the plug-in settings"
        )
    else:
        advice = (
            "check that it runs on that machine and that this one may reach it, or check "
            "the endpoint in the plug-in settings"
        )
    return DaemonUnavailable(
        f"no style engine answered at {endpoint} within {timeout_s:g} s: {advice}"
    )
