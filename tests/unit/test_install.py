"""`nst install-plugin` / `nst uninstall-plugin` for both editors, in a made-up home folder:
what goes where, what the settings record, what the commands say, and that an uninstall leaves
the folders exactly as they were before the install."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from file_tree import tree

from nst_app import cli
from nst_client.settings import CONFIG_NAME, DEFAULT_IDLE_EXIT_S, load
from nst_daemon import launch_command
from nst_plugins import install as shared

USER_KRITARC = "[General]\nfoo=1\n\n[python]\nenable_other=true\n\n[Zoom]\nlevel=2\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home folder, the XDG variables unset (their defaults are under it), and a
    `flatpak` on PATH that fails the test if anything asks it (no Flatpak editor here)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "NST_ENDPOINT", "NST_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flatpak = bin_dir / "flatpak"
    flatpak.write_text(f"#!/bin/sh\ntouch {tmp_path}/flatpak-was-asked\nexit 1\n")
    flatpak.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return home


def editors_have_run(home: Path) -> None:
    """What GIMP 3 and Krita leave in a profile once they have run."""
    (home / ".config/GIMP/3.0/plug-ins").mkdir(parents=True)
    (home / ".config/GIMP/3.0/gimprc").write_text("(theme-path)\n")
    (home / ".local/share/krita/pykrita").mkdir(parents=True)
    (home / ".config/kritarc").write_text(USER_KRITARC)


def config(folder: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / CONFIG_NAME).read_text())
    return data


@pytest.mark.parametrize("profiles", ["none", "editors have run"])
def test_install_all_then_uninstall_all_leaves_the_tree_as_before(
    home: Path, profiles: str
) -> None:
    if profiles != "none":
        editors_have_run(home)
    before = tree(home)
    done = shared.install_hosts("all", endpoint="tcp://127.0.0.1:6123")
    gimp_dir = home / ".config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
    package = home / ".local/share/krita/pykrita/neural_style"
    assert [(d.host, d.folder) for d in done] == [("gimp", gimp_dir), ("krita", package)]
    for folder in (gimp_dir, package):
        recorded = config(folder)
        assert recorded["python"] == sys.executable
        assert (
            recorded["daemon"]
            == launch_command()
            == [str(Path(sys.executable).with_name("nst-daemon"))]
        )
        assert recorded["endpoint"] == "tcp://127.0.0.1:6123"
        assert recorded["start_on_demand"] is True
        assert recorded["idle_exit_s"] == DEFAULT_IDLE_EXIT_S
        assert recorded["host_command"] == [] and recorded["transport"] == "auto"
        # What the plug-ins' own loader reads back.
        settings = load(folder / CONFIG_NAME, env={})
        assert settings.daemon_command() == recorded["daemon"]
        assert settings.bridge_command() == [sys.executable]
    assert (gimp_dir / "nst_client" / "launcher.py").is_file()
    assert (package.parent / "nst_client" / "launcher.py").is_file()
    assert (package.parent / "neural_style.desktop").is_file()
    kritarc = (home / ".config/kritarc").read_text()
    assert "enable_neural_style=true" in kritarc
    if profiles != "none":
        assert "foo=1" in kritarc and "enable_other=true" in kritarc and "level=2" in kritarc
    assert not (home.parent / "flatpak-was-asked").exists()  # no Flatpak editor, no question

    removed = shared.uninstall_hosts("all")
    assert tree(home) == before
    assert gimp_dir in removed["gimp"] and package in removed["krita"]
    # Twice is harmless: nothing left to remove, nothing changes.
    assert shared.uninstall_hosts("all") == {"gimp": [], "krita": []}
    assert tree(home) == before


def test_reinstalling_keeps_what_the_first_install_made(home: Path) -> None:
    """The second install finds kritarc and the folders there: made by the first, still to go."""
    before = tree(home)
    shared.install_hosts("all")
    shared.install_hosts("all", idle_exit_s=60)
    assert config(home / ".local/share/krita/pykrita/neural_style")["idle_exit_s"] == 60
    shared.uninstall_hosts("all")
    assert tree(home) == before


def test_uninstall_leaves_what_krita_and_the_user_added_since(home: Path) -> None:
    editors_have_run(home)
    shared.install_hosts("krita")
    rc = home / ".config/kritarc"
    rc.write_text(rc.read_text() + "\n[neural_style]\nrecent_styles=[]\n")
    pykrita = home / ".local/share/krita/pykrita"
    (pykrita / "other_plugin.desktop").write_text("x")
    shared.uninstall_hosts("krita")
    assert rc.read_text() == USER_KRITARC + "\n[neural_style]\nrecent_styles=[]\n"
    assert [p.name for p in pykrita.iterdir()] == ["other_plugin.desktop"]


def test_a_made_kritarc_krita_wrote_to_stays_without_our_section(home: Path) -> None:
    shared.install_hosts("krita")
    rc = home / ".config/kritarc"
    assert rc.read_text() == "[python]\nenable_neural_style=true\n"
    rc.write_text("[General]\nx=1\n\n" + rc.read_text())  # Krita ran and saved its settings
    shared.uninstall_hosts("krita")
    assert rc.read_text() == "[General]\nx=1\n"


def test_dest_gets_the_files_and_keeps_the_folder(home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mine" / "plug-ins"
    shared.install_hosts("gimp", str(dest))
    assert (dest / "plug-in-nst-stylize" / CONFIG_NAME).is_file()
    assert shared.uninstall_hosts("gimp", str(dest)) == {"gimp": [dest / "plug-in-nst-stylize"]}
    assert dest.is_dir() and not any(dest.iterdir())
    with pytest.raises(ValueError, match="--dest"):
        shared.install_hosts("all", str(dest))


def test_a_bad_value_leaves_nothing(home: Path) -> None:
    before = tree(home)
    with pytest.raises(ValueError, match="transport"):
        shared.install_hosts("all", transport="pigeon")
    with pytest.raises(ValueError, match="idle_exit_s"):
        shared.install_hosts("all", idle_exit_s=-1)
    assert tree(home) == before


def test_daemon_command_is_the_script_beside_python_or_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert launch_command(str(python)) == [str(python), "-m", "nst_daemon"]
    (python.parent / "nst-daemon").touch()
    assert launch_command(str(python)) == [str(python.parent / "nst-daemon")]
    monkeypatch.setattr(sys, "executable", str(python))
    assert shared.plugin_settings("tcp://127.0.0.1:1", "auto").daemon == [
        str(python.parent / "nst-daemon")
    ]


# --- the nst command ---------------------------------------------------------------------------


def test_the_commands_say_what_to_do_next_and_what_they_removed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    editors_have_run(home)
    before = tree(home)
    assert cli.main(["install-plugin", "all", "--idle-exit", "90"]) == 0
    out = capsys.readouterr().out
    gimp_dir = home / ".config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
    package = home / ".local/share/krita/pykrita/neural_style"
    assert f"Installed the GIMP plug-in in {gimp_dir}" in out
    assert "restart GIMP; the filter is in Filters > Artistic > Neural Style Transfer…" in out
    assert f"Installed the Krita plug-in in {package}" in out
    assert "restart Krita, then show the docker: Settings > Dockers > Neural Style." in out
    assert "starts by itself" in out and "stops after 90 seconds without a job" in out
    assert config(package)["idle_exit_s"] == 90

    assert cli.main(["uninstall-plugin", "krita"]) == 0
    out = capsys.readouterr().out
    assert f"removed {package}\n" in out and f"removed {package.parent / 'nst_client'}" in out
    assert f"took its line out of {home / '.config/kritarc'}" in out
    assert cli.main(["uninstall-plugin", "all"]) == 0
    out = capsys.readouterr().out
    assert f"removed {gimp_dir}" in out
    assert "The Krita plug-in was not installed: nothing to remove." in out
    assert tree(home) == before


def test_install_options_reach_the_settings(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install-plugin", "gimp", "--no-start-on-demand", "--idle-exit", "0"]) == 0
    out = capsys.readouterr().out
    recorded = config(home / ".config/GIMP/3.0/plug-ins/plug-in-nst-stylize")
    assert recorded["start_on_demand"] is False and recorded["idle_exit_s"] == 0
    assert "will not start the style engine themselves" in out and "nst daemon start" in out
    assert cli.main(["install-plugin", "krita", "--idle-exit", "3600"]) == 0
    assert "stops after 1 hour without a job" in capsys.readouterr().out
    remote = ["install-plugin", "krita", "--endpoint", "tcp://192.0.2.7:5757"]
    assert cli.main(remote) == 0
    assert "192.0.2.7:5757 is on another machine" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_idle_exit_is_a_usage_error(
    home: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["install-plugin", "all", "--idle-exit", value])
    assert exit_.value.code == 2
    assert "expected seconds, 0 (never) or more" in capsys.readouterr().err
    assert not any(home.iterdir())


def test_dest_with_all_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install-plugin", "all", "--dest", str(home / "x")]) == 2
    assert "use it with gimp or krita, not all" in capsys.readouterr().err
    assert not any(home.iterdir())


def test_uninstall_without_a_record_removes_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folders of the plug-in's names that no install recorded are someone else's."""
    dest = tmp_path / "pykrita"
    for name in ("neural_style", "nst_client"):
        (dest / name).mkdir(parents=True)
        (dest / name / "mine.py").write_text("# the user's own\n")
    (dest / "neural_style.desktop").write_text("[Desktop Entry]\n")
    before = tree(dest)
    assert cli.main(["uninstall-plugin", "krita", "--dest", str(dest)]) == 0
    assert tree(dest) == before
    said = capsys.readouterr().out
    assert said.count("has no install record of nst: nothing was removed") == 3, said


def test_uninstall_removes_exactly_what_was_recorded(home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pykrita"
    shared.install_hosts("krita", str(dest))
    ours = dest / "neural_style"
    (ours / "notes.txt").write_text("the user's, put there after the install\n")
    shared.uninstall_hosts("krita", str(dest))
    assert (ours / "notes.txt").read_text().startswith("the user's")
    assert sorted(p.name for p in ours.iterdir()) == ["notes.txt"]
    assert not (dest / "nst_client").exists() and not (dest / "neural_style.desktop").exists()


@pytest.mark.parametrize("host", ["gimp", "krita"])
def test_install_refuses_to_replace_what_it_did_not_install(home: Path, host: str) -> None:
    dest = home / "plugins"
    taken = dest / ("plug-in-nst-stylize" if host == "gimp" else "neural_style")
    taken.mkdir(parents=True)
    (taken / "theirs.py").write_text("# not ours\n")
    before = tree(dest)
    with pytest.raises(FileExistsError, match="no install record says nst put it there"):
        shared.install_hosts(host, str(dest))
    assert tree(dest) == before
    assert cli.main(["install-plugin", host, "--dest", str(dest)]) == 2  # one line, nothing done
    assert tree(dest) == before
    shared.install_hosts(host, str(dest), force=True)  # told to
    assert not (taken / "theirs.py").exists() and (taken / CONFIG_NAME).is_file()
    shared.install_hosts(host, str(dest))  # a recorded install replaces itself freely
