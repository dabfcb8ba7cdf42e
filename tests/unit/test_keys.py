"""Secret keys are their owner's alone: `nst keys` makes them so, and the daemon and the
clients refuse one that other users can read, naming the one command that fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nst_app import cli
from nst_client.keyfiles import exposed, make_keys
from nst_client.settings import SettingsError, load


def test_nst_keys_makes_a_private_secret(tmp_path: Path) -> None:
    assert cli.main(["keys", "alice", "--dir", str(tmp_path)]) == 0
    public, secret = tmp_path / "alice.key", tmp_path / "alice.key_secret"
    assert public.stat().st_mode & 0o777 == 0o644
    assert secret.stat().st_mode & 0o777 == 0o600
    assert exposed(secret) is None
    assert cli.main(["keys", "alice", "--dir", str(tmp_path)]) == 2  # never replaced
    with pytest.raises(ValueError, match="plain file name"):
        make_keys(tmp_path, "../x")


def test_a_secret_others_can_read_is_refused_with_its_fix(tmp_path: Path) -> None:
    server, _ = make_keys(tmp_path, "server")
    _, secret = make_keys(tmp_path, "alice")
    secret.chmod(0o644)  # as the raw zmq.auth recipe leaves it
    problem = exposed(secret)
    assert problem is not None and f"chmod 600 {secret}" in problem
    given = {"curve_server_key": str(server), "curve_client_cert": str(secret)}
    with pytest.raises(SettingsError, match=r"can be read by other users .*chmod 600"):
        load(None, {}, overrides=given)
    secret.chmod(0o600)
    assert load(None, {}, overrides=given).curve_keys() is not None


def test_the_daemon_refuses_a_readable_secret(tmp_path: Path) -> None:
    from nst_daemon.transport import SetupError, _named_keys

    _, secret = make_keys(tmp_path, "server")
    secret.chmod(0o640)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with pytest.raises(SetupError, match=r"--curve-secret-key: .*chmod 600"):
        _named_keys(str(secret), str(allowed))
