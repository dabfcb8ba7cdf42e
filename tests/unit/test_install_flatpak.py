"""Installing for Flatpak GIMP and Flatpak Krita, with a made-up home folder and a made-up
`flatpak` on PATH that answers `flatpak info --show-permissions APP` as told."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from file_tree import tree

from nst_app import cli
from nst_client.settings import CONFIG_NAME, load
from nst_daemon import launch_command
from nst_plugins import flatpak
from nst_plugins import install as shared

ALLOWED = "org.freedesktop.Flatpak=talk"
KRITA_APP = Path(".var/app/org.kde.krita")
GIMP_APP = Path(".var/app/org.gimp.GIMP")
SANDBOX_KRITARC = "[General]\nfoo=1\n"
ALLOW_KRITA = "flatpak override --user --talk-name=org.freedesktop.Flatpak org.kde.krita"


def permissions(bus_policy: str = "") -> str:
    """`flatpak info --show-permissions` as Flatpak prints it."""
    return (
        "[Context]\nshared=network;ipc;\nsockets=x11;wayland;\ndevices=dri;\n"
        "filesystems=xdg-pictures;\n\n[Session Bus Policy]\n"
        f"org.freedesktop.Notifications=talk\n{bus_policy}\n"
    )


class FakeFlatpak:
    """A `flatpak` script: prints the permissions file of the app it is asked about (exit 1
    with Flatpak's own error when there is none) and logs its arguments."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "calls"
        script = folder / "flatpak"
        script.write_text(
            "#!/bin/sh\n"
            f'echo "$*" >> {self.log}\n'
            f'app_file="{folder}/$3.permissions"\n'
            'if [ "$1 $2" = "info --show-permissions" ] && [ -f "$app_file" ]; then\n'
            '    cat "$app_file"; exit 0\n'
            "fi\n"
            'echo "error: $3/*unspecified*/*unspecified* not installed" >&2\n'
            "exit 1\n"
        )
        script.chmod(0o755)

    def grant(self, app: str, text: str) -> None:
        (self.folder / f"{app}.permissions").write_text(text)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "NST_ENDPOINT", "NST_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    return home


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeFlatpak:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return FakeFlatpak(folder)


def flatpak_krita_has_run(home: Path) -> Path:
    (home / KRITA_APP / "config").mkdir(parents=True)
    rc = home / KRITA_APP / "config" / "kritarc"
    rc.write_text(SANDBOX_KRITARC)
    return rc


def test_only_flatpak_krita_allowed_installs_there_through_flatpak_spawn(
    home: Path, fake: FakeFlatpak, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = flatpak_krita_has_run(home)
    fake.grant("org.kde.krita", permissions(ALLOWED))
    before = tree(home)
    assert cli.main(["install-plugin", "krita"]) == 0
    out = capsys.readouterr().out
    package = home / KRITA_APP / "data/krita/pykrita/neural_style"
    assert f"Installed the Krita plug-in for Flatpak Krita (org.kde.krita) in {package}" in out
    assert "flatpak-spawn --host" in out and "Settings > Dockers > Neural Style" in out
    assert fake.calls() == ["info --show-permissions org.kde.krita"]
    recorded = json.loads((package / CONFIG_NAME).read_text())
    assert recorded["host_command"] == ["flatpak-spawn", "--host"]
    assert recorded["transport"] == "bridge"
    assert recorded["python"] == sys.executable
    settings = load(package / CONFIG_NAME, env={})
    assert settings.bridge_command() == ["flatpak-spawn", "--host", sys.executable]
    assert settings.daemon_command() == ["flatpak-spawn", "--host", *launch_command()]
    assert (package.parent / "nst_client" / "client.py").is_file()
    assert rc.read_text() == SANDBOX_KRITARC + "\n[python]\nenable_neural_style=true\n"
    assert not (home / ".config").exists() and not (home / ".local").exists()
    # Uninstall needs no permission and puts everything back.
    fake.grant("org.kde.krita", permissions())
    assert cli.main(["uninstall-plugin", "krita"]) == 0
    assert f"took its line out of {rc}" in capsys.readouterr().out
    assert tree(home) == before


def test_a_sandbox_that_may_not_spawn_is_refused_with_the_command_that_allows_it(
    home: Path, fake: FakeFlatpak, capsys: pytest.CaptureFixture[str]
) -> None:
    flatpak_krita_has_run(home)
    fake.grant("org.kde.krita", permissions("org.freedesktop.Flatpak=none"))
    before = tree(home)
    assert cli.main(["install-plugin", "all"]) == 2  # GIMP is native: it goes in, or nothing
    err = capsys.readouterr().err
    assert err.count("nst: error:") == 1
    assert "Flatpak Krita (org.kde.krita) runs in a sandbox" in err
    assert f"\n    {ALLOW_KRITA}\n" in err
    assert "run any program as you outside the sandbox" in err
    assert "Nothing was installed" in err
    assert tree(home) == before


def test_flatpak_gimp_chosen_with_the_option(home: Path, fake: FakeFlatpak) -> None:
    (home / ".config/GIMP/3.0").mkdir(parents=True)  # a native GIMP has run too
    (home / GIMP_APP).mkdir(parents=True)  # and Flatpak GIMP, but not GIMP 3 yet
    fake.grant("org.gimp.GIMP", permissions("org.freedesktop.*=talk"))
    before = tree(home)
    (done,) = shared.install_hosts("gimp", flatpak=True)
    expected = home / GIMP_APP / "config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
    assert done.folder == expected and done.target.flatpak_app == "org.gimp.GIMP"
    assert json.loads((expected / CONFIG_NAME).read_text())["host_command"] == [
        "flatpak-spawn",
        "--host",
    ]
    assert not (home / ".config/GIMP/3.0/plug-ins").exists()
    assert shared.uninstall_hosts("gimp", flatpak=True) == {
        "gimp": [expected, *[home / GIMP_APP / p for p in _made_for_gimp()]]
    }
    assert tree(home) == before


def _made_for_gimp() -> list[str]:
    """The folders under ~/.var/app/org.gimp.GIMP an install into an empty one makes,
    deepest first (the app folder itself is GIMP's)."""
    return ["config/GIMP/3.0/plug-ins", "config/GIMP/3.0", "config/GIMP", "config"]


def test_both_profiles_native_by_default_with_a_note(home: Path, fake: FakeFlatpak) -> None:
    (home / ".config/GIMP/3.0").mkdir(parents=True)
    (home / GIMP_APP / "config/GIMP/3.0").mkdir(parents=True)
    (done,) = shared.install_hosts("gimp")
    assert done.target.flatpak_app is None
    assert done.folder == home / ".config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
    assert "`nst install-plugin gimp --flatpak`" in shared.install_report([done])
    assert fake.calls() == []


def test_only_flatpak_gimp_is_found_and_no_flatpak_keeps_native(
    home: Path, fake: FakeFlatpak
) -> None:
    (home / GIMP_APP / "config/GIMP/3.0").mkdir(parents=True)
    fake.grant("org.gimp.GIMP", permissions())
    with pytest.raises(flatpak.FlatpakError, match="org.gimp.GIMP"):
        shared.install_hosts("gimp")
    (done,) = shared.install_hosts("gimp", flatpak=False)
    assert done.folder == home / ".config/GIMP/3.0/plug-ins/plug-in-nst-stylize"


def test_an_explicit_transport_is_kept_for_a_flatpak(home: Path, fake: FakeFlatpak) -> None:
    fake.grant("org.kde.krita", permissions(ALLOWED))
    (done,) = shared.install_hosts("krita", transport="zmq", flatpak=True)
    assert done.settings.transport == "zmq"
    assert done.settings.host_command == flatpak.HOST_COMMAND


def test_flatpak_app_not_installed(home: Path, fake: FakeFlatpak) -> None:
    with pytest.raises(flatpak.FlatpakError) as refused:
        shared.install_hosts("krita", flatpak=True)
    text = str(refused.value)
    assert "Flatpak Krita (org.kde.krita) is not installed" in text
    assert "not installed" in text.split("says:")[1] and "--no-flatpak" in text
    assert not any(home.iterdir())


def test_no_flatpak_command(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(flatpak.FlatpakError, match="`flatpak` command.*not on PATH"):
        shared.install_hosts("gimp", flatpak=True)
    assert not any(home.iterdir())


def test_flatpak_is_linux_only(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(ValueError, match="Linux only"):
        shared.install_hosts("krita", flatpak=True)


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        ("org.freedesktop.Flatpak=talk", True),
        ("org.freedesktop.Flatpak=own", True),
        (" org.freedesktop.Flatpak = talk ", True),
        ("org.freedesktop.*=talk", True),
        ("org.*=talk", True),
        ("org.freedesktop.Flatpak=see", False),
        ("org.freedesktop.Flatpak=none", False),
        ("org.freedesktop.Flatpak.Development=talk", False),
        ("org.freedesktop.Flatpak.*=talk", False),
        ("org.freedesktop.FlatpakX=talk", False),
        ("", False),
    ],
)
def test_permission_parsing(policy: str, allowed: bool) -> None:
    assert flatpak.may_spawn_on_host(permissions(policy)) is allowed


def test_the_permission_counts_only_on_the_session_bus() -> None:
    text = "[System Bus Policy]\norg.freedesktop.Flatpak=talk\n"
    assert not flatpak.may_spawn_on_host(text)
    assert not flatpak.may_spawn_on_host("[Context]\norg.freedesktop.Flatpak=talk\n")
