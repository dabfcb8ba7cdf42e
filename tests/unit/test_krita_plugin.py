"""Unit tests of the Krita plug-in's pure parts and its installer (no Krita, no daemon).

The plug-in package is imported as Krita imports it (plugins/krita on sys.path), with
tests/unit/krita_standin.py standing in for Krita's `krita` module.
"""

from __future__ import annotations

import ast
import json
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import krita_standin
import pytest

from nst_client import client, layouts, settings, transports
from nst_client.params import MAX_TIME_BUDGET_S, MIN_TIME_BUDGET_S
from nst_plugins import install as shared
from nst_plugins import krita_installer as installer

PLUGIN = shared.payload_dir("krita") / installer.PLUGIN_NAME


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    return krita_standin.load_plugin()


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    """(statement, absolute module name) of every import; relative ones as '.name'."""
    found: list[tuple[ast.stmt, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node, "." * node.level + (node.module or "")))
    return found


def test_imports_only_nst_client_qt_and_krita() -> None:
    """The plug-in runs in Krita's Python: the standard library, nst_client (installed beside
    it, imported as a top-level package without fallbacks), krita, and PyQt in qt.py only (so
    Krita 6's PyQt6 needs changes there alone). Never the engine, the daemon, torch, numpy, PIL.
    """
    seen = set()
    for path in PLUGIN.glob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for n in ast.walk(t)}
        for node, name in _imports(tree):
            top = name.split(".")[0]
            seen.add(top)
            if name.startswith("."):
                assert "nst_client" not in name, f"{path.name}: {name} (no vendored copy)"
                continue
            assert top in {"krita", "nst_client", "PyQt5", "PyQt6"} | sys.stdlib_module_names, (
                f"{path.name} imports {name}"
            )
            if top in ("PyQt5", "PyQt6"):
                assert path.name == "qt.py", f"{path.name} imports {name}"
            if top == "nst_client":
                assert id(node) not in guarded, f"{path.name}: {name} inside try (no fallback)"
    assert "nst_client" in seen and not seen & {"nst_core", "nst_daemon", "torch", "numpy", "PIL"}


def test_mask_alpha_composites_through_a_soft_selection(plugin: ModuleType) -> None:
    px = plugin.pixels
    rgba = bytes([10, 20, 30, 200] * 4)
    out = px.mask_alpha(rgba, "u8", bytes([0, 255, 128, 1]))
    assert list(out) == [0, 0, 0, 0, 10, 20, 30, 200, 10, 20, 30, 100, 10, 20, 30, 1]
    r16 = struct.pack("<4H", 1, 2, 3, 65535) * 3
    out16 = struct.unpack("<12H", px.mask_alpha(r16, "u16", bytes([0, 128, 255])))
    assert out16 == (0, 0, 0, 0, 1, 2, 3, 32896, 1, 2, 3, 65535)
    with pytest.raises(ValueError, match="does not match"):
        px.mask_alpha(rgba, "u8", bytes(3))


def test_alpha_is_empty(plugin: ModuleType) -> None:
    px = plugin.pixels
    assert px.alpha_is_empty(bytes(8), "u8")
    assert not px.alpha_is_empty(bytes([0, 0, 0, 0, 9, 9, 9, 1]), "u8")
    assert not px.alpha_is_empty(struct.pack("<4H", 5, 5, 5, 256), "u16")  # high byte only
    assert px.alpha_is_empty(struct.pack("<4H", 5, 5, 5, 0), "u16")


def test_the_time_limit_steps_are_within_the_definitions_range(plugin: ModuleType) -> None:
    steps = plugin.widgets.TIME_LIMIT_STEPS
    assert steps[0] == 0 and steps[-1] == MAX_TIME_BUDGET_S
    assert list(steps) == sorted(set(steps))
    assert all(step >= MIN_TIME_BUDGET_S for step in steps[1:])


DURATIONS = [
    ("90", 90.0),
    ("90s", 90.0),
    ("90 sec", 90.0),
    ("2m", 120.0),
    ("2 min", 120.0),
    ("1m30s", 90.0),
    ("1m30", 90.0),
    ("1 min 30 s", 90.0),
    ("1.5m", 90.0),
    ("1h", 3600.0),
    ("1h30", 5400.0),
    ("2 hours 5 s", 7205.0),
    ("1:30", 90.0),
    ("1:02:03", 3723.0),
    ("  45 S ", 45.0),
    ("", None),
    ("soon", None),
    ("30s 1m", None),
    ("5 parsecs", None),
    ("1:2:3:4", None),
]


@pytest.mark.parametrize("text,seconds", DURATIONS)
def test_durations_read_as_people_write_them(
    plugin: ModuleType, text: str, seconds: float | None
) -> None:
    """The docker's time limit and `nst stylize --time-budget` read the same words: both
    use nst_client.progress.parse_duration."""
    from nst_client.progress import parse_duration

    assert parse_duration(text) == seconds
    assert plugin.widgets.parse_duration is parse_duration


def test_durations_show_as_they_are_read(plugin: ModuleType) -> None:
    jp = plugin.widgets
    shown = {s: jp.duration_text(s) for s in (5, 45, 60, 90, 3600, 3605, 5400, 86400)}
    assert shown == {
        5: "5 s",
        45: "45 s",
        60: "1 min",
        90: "1 min 30 s",
        3600: "1 h",
        3605: "1 h 5 s",
        5400: "1 h 30 min",
        86400: "24 h",
    }
    for seconds, text in shown.items():
        assert jp.parse_duration(text) == seconds


def test_settings_come_from_the_file_beside_the_package(
    plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = plugin.link
    assert link.CONFIG_PATH == PLUGIN.resolve() / settings.CONFIG_NAME
    config = tmp_path / settings.CONFIG_NAME
    config.write_text('{"endpoint": "tcp://127.0.0.1:9", "transport": "zmq", "timeout_s": 2}')
    monkeypatch.setattr(link, "CONFIG_PATH", config)
    for name in ("NST_ENDPOINT", "NST_TRANSPORT", "NST_PYTHON", "NST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    s = link.load_settings()
    assert (s.endpoint, s.transport, s.timeout_s) == ("tcp://127.0.0.1:9", "zmq", 2.0)
    monkeypatch.setenv("NST_TRANSPORT", "bridge")
    assert link.load_settings().resolved_transport() == "bridge"
    monkeypatch.setenv("NST_TRANSPORT", "carrier-pigeon")
    with pytest.raises(settings.SettingsError, match="NST_TRANSPORT: must be one of"):
        link.load_settings()


def test_connect_names_the_plugin_and_its_transport(
    plugin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    class Transport:
        def __init__(self, endpoint: str, *args: Any, **kwargs: Any) -> None:
            made.append(endpoint)

        def send(self, header: Any, buffers: Any = ()) -> None: ...

        def recv(self, timeout_s: float) -> None: ...

        def close(self) -> None: ...

    monkeypatch.setattr(transports, "ZmqTransport", Transport)
    daemon = settings.Settings(endpoint="tcp://127.0.0.1:7", transport="zmq", timeout_s=3.0)
    with plugin.link.connect(daemon) as connection:
        assert isinstance(connection, client.Client)
        assert connection.client_name == "krita-neural-style/zmq"
        assert (connection.endpoint, connection.timeout_s) == ("tcp://127.0.0.1:7", 3.0)
    assert made == ["tcp://127.0.0.1:7"]


def test_version_warning(plugin: ModuleType) -> None:
    link = plugin.link
    assert link.version_warning(client.__version__) is None
    assert link.version_warning("") is None  # an engine that did not say
    note = link.version_warning("99.0")
    assert note is not None and "`nst install-plugin krita`" in note and "99.0" in note


def test_saved_engine_settings_are_read_as_settings_types(
    plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Krita keeps text; the overrides reach nst_client.settings.load as the file's types,
    over the file and the environment, and blank ones leave the installed values."""
    link = plugin.link
    krita = krita_standin.reset()
    config = tmp_path / settings.CONFIG_NAME
    settings.Settings(endpoint="tcp://127.0.0.1:9", idle_exit_s=60.0).save(config)
    monkeypatch.setattr(link, "CONFIG_PATH", config)
    monkeypatch.setenv("NST_ENDPOINT", "tcp://127.0.0.1:8")
    monkeypatch.delenv("NST_IDLE_EXIT", raising=False)
    monkeypatch.delenv("NST_START_ON_DEMAND", raising=False)
    assert link.saved_overrides() == {}
    assert link.load_settings().endpoint == "tcp://127.0.0.1:8"  # the environment's
    link.save_overrides({"endpoint": "tcp://127.0.0.1:7", "start_on_demand": False})
    assert krita.readSetting(link.SETTINGS_GROUP, "start_on_demand", "") == "false"
    assert krita.readSetting(link.SETTINGS_GROUP, "idle_exit_s", "x") == ""
    krita.writeSetting(link.SETTINGS_GROUP, "idle_exit_s", "90")
    assert link.saved_overrides() == {
        "endpoint": "tcp://127.0.0.1:7",
        "start_on_demand": False,
        "idle_exit_s": 90.0,
    }
    loaded = link.load_settings()
    assert (loaded.endpoint, loaded.start_on_demand, loaded.idle_exit_s) == (
        "tcp://127.0.0.1:7",
        False,
        90.0,
    )
    assert link.installed_settings().endpoint == "tcp://127.0.0.1:8"
    krita.writeSetting(link.SETTINGS_GROUP, "idle_exit_s", "soon")
    with pytest.raises(settings.SettingsError, match="expected seconds, got 'soon'"):
        link.load_settings()


def test_platform_paths() -> None:
    env = {
        "HOME": "/home/a",
        "APPDATA": r"C:\Users\a\AppData\Roaming",
        "LOCALAPPDATA": r"C:\Users\a\AppData\Local",
    }
    assert installer.pykrita_dir(env, "linux") == Path("/home/a/.local/share/krita/pykrita")
    assert installer.kritarc_path(env, "linux") == Path("/home/a/.config/kritarc")
    xdg = {**env, "XDG_DATA_HOME": "/x/data", "XDG_CONFIG_HOME": "/x/config"}
    assert installer.pykrita_dir(xdg, "linux") == Path("/x/data/krita/pykrita")
    assert installer.kritarc_path(xdg, "linux") == Path("/x/config/kritarc")
    assert installer.pykrita_dir(env, "darwin") == Path(
        "/home/a/Library/Application Support/krita/pykrita"
    )
    assert installer.pykrita_dir(env, "win32") == Path(env["APPDATA"]) / "krita" / "pykrita"
    assert installer.kritarc_path(env, "win32") == Path(env["LOCALAPPDATA"]) / "kritarc"
    # Without LOCALAPPDATA the message says what to set, and names no option that is not there.
    with pytest.raises(RuntimeError, match="set it to the folder that holds kritarc") as info:
        installer.kritarc_path({"APPDATA": env["APPDATA"]}, "win32")
    assert "--" not in str(info.value)


def test_kritarc_enable_line(tmp_path: Path) -> None:
    rc = tmp_path / "kritarc"
    assert installer.set_enabled(rc, True)
    assert rc.read_text() == "[python]\nenable_neural_style=true\n"
    assert not installer.set_enabled(rc, True)  # idempotent
    rc.write_text("[General]\nx=1\n")
    installer.set_enabled(rc, True)
    assert rc.read_text() == "[General]\nx=1\n\n[python]\nenable_neural_style=true\n"
    installer.set_enabled(rc, False)
    assert "enable_neural_style" not in rc.read_text()
    assert rc.read_text().startswith("[General]\nx=1\n")


def test_install_and_uninstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest, rc = tmp_path / "pykrita", tmp_path / "config" / "kritarc"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(rc.parent))
    original = "[General]\nfoo=1\n\n[python]\nenable_other=true\n"
    rc.parent.mkdir()
    rc.write_text(original)
    (done,) = shared.install_hosts("krita", str(dest), "tcp://127.0.0.1:1", "bridge")
    package = done.folder
    assert package == dest / "neural_style"
    # The client goes beside the plug-in (Krita puts pykrita on sys.path), not inside it.
    assert (dest / "nst_client" / "client.py").exists()
    assert not (package / "nst_client").exists()
    assert {p.name for p in package.glob("*.py")} == {p.name for p in PLUGIN.glob("*.py")}
    assert (dest / "neural_style.desktop").exists()
    config = json.loads((package / settings.CONFIG_NAME).read_text())
    assert config["transport"] == "bridge"
    assert "style_weight" not in config  # strength goes to the engine, which maps it
    assert "enable_neural_style=true" in rc.read_text()
    removed = shared.uninstall_hosts("krita", str(dest))["krita"]
    assert set(removed) == {package, dest / "neural_style.desktop", dest / "nst_client", rc}
    assert not package.exists() and rc.read_text() == original
    with pytest.raises(ValueError, match="must be one of"):
        shared.install_hosts("krita", str(dest), "tcp://127.0.0.1:1", "pigeon")


# --- regions (the pure rules) -----------------------------------------------------------------


def _mask(plugin: ModuleType, rect: tuple[int, int, int, int], value: int = 255) -> Any:
    x, y, w, h = rect
    return plugin.regions.Mask((8, 6), x, y, w, h, bytes([value]) * (w * h))


def _regions(plugin: ModuleType, *masks: Any, outside: str = "photo") -> Any:
    found = plugin.regions.DocumentRegions(outside=outside)
    for number, mask in enumerate(masks, start=1):
        found.add(
            plugin.regions.Region(mask, f"selection {number}", f"s{number}.png", 10.0 * number)
        )
    return found


def test_a_mask_is_cut_to_its_values_and_read_back_over_any_area(plugin: ModuleType) -> None:
    rg = plugin.regions
    values = bytes(4) + bytes([0, 9, 200, 0]) + bytes([0, 0, 255, 0])  # a 4x3 area
    mask = rg.trimmed(values, (2, 1, 4, 3), (8, 6))
    assert (mask.x, mask.y, mask.width, mask.height, mask.values) == (3, 2, 2, 2, b"\t\xc8\x00\xff")
    assert rg.trimmed(bytes(12), (2, 1, 4, 3), (8, 6)) is None
    # Over a larger area: zeros where the mask does not reach.
    assert mask.crop((2, 2, 4, 2)) == bytes([0, 9, 200, 0, 0, 0, 255, 0])
    assert mask.crop((0, 0, 2, 2)) == bytes(4)  # wholly outside
    width, height, grey = rg.thumbnail(_mask(plugin, (2, 0, 4, 6), 90), 4)
    assert (width, height) == (4, 3)  # the canvas's 4:3, the long side `side`
    assert grey == bytes([0, 90, 90, 0] * 3)  # the nearest canvas pixels


def test_a_layer_gives_its_alpha_or_if_opaque_everywhere_its_grey(plugin: ModuleType) -> None:
    rg = plugin.regions
    # Krita's B,G,R,A: a painted pixel in any colour counts by its alpha.
    painted = bytes([0, 0, 0, 255, 10, 200, 30, 128, 7, 7, 7, 0])
    assert rg.layer_values(painted, "RGBA", "U8", 3, whole=False) == bytes([255, 128, 0])
    opaque = bytes([0, 0, 0, 255, 255, 255, 255, 255, 0, 255, 0, 255])
    assert rg.layer_values(opaque, "RGBA", "U8", 3, whole=False) == bytes([255] * 3)
    # Opaque over the whole canvas: a black-and-white mask, white = all of the style.
    assert rg.layer_values(opaque, "RGBA", "U8", 3, whole=True) == bytes([0, 255, 149])
    grey = bytes([40, 255, 220, 255])
    assert rg.layer_values(grey, "GRAYA", "U8", 2, whole=True) == bytes([40, 220])
    sixteen = struct.pack("<8H", 1, 2, 3, 65535, 1, 2, 3, 32896)
    assert rg.layer_values(sixteen, "RGBA", "U16", 2, whole=False) == bytes([255, 128])
    with pytest.raises(rg.RegionError, match="it is F32; use an 8-bit or 16-bit integer"):
        rg.layer_values(bytes(32), "RGBA", "F32", 2, whole=False)
    with pytest.raises(rg.RegionError, match="it is in CMYKA"):
        rg.layer_values(bytes(10), "CMYKA", "U8", 2, whole=False)


def test_the_area_is_around_the_regions_and_the_first_wins(plugin: ModuleType) -> None:
    rg = plugin.regions
    soft = rg.Mask((8, 6), 3, 1, 3, 2, bytes([255, 255, 100, 255, 255, 100]))
    found = _regions(plugin, soft, _mask(plugin, (4, 2, 3, 3), 200))
    job = rg.plan(found, (8, 6))
    assert job.area == (3, 1, 4, 4) and job.rest is None
    first, second = job.shares
    assert first == bytes([255, 255, 100, 0, 255, 255, 100, 0] + [0] * 8)
    # Under the first region the second keeps only what its soft edge leaves.
    assert second == bytes([0] * 4 + [0, 0, 155, 200] + [0, 200, 200, 200] * 2)
    assert job.shown == bytes(255 if a or b else 0 for a, b in zip(first, second, strict=True))
    # Moved up, the second wins instead.
    assert found.move(found.regions[1].ident, -1)
    assert rg.plan(found, (8, 6)).shares[0] == _mask(plugin, (4, 2, 3, 3), 200).crop(job.area)


def test_a_region_hidden_by_those_before_it_is_named(plugin: ModuleType) -> None:
    rg = plugin.regions
    found = _regions(plugin, _mask(plugin, (0, 0, 8, 6)), _mask(plugin, (2, 2, 2, 2)))
    with pytest.raises(rg.RegionError, match=r"region 2 \(selection 2\) lies wholly under"):
        rg.plan(found, (8, 6))
    with pytest.raises(rg.RegionError, match="was made on a 8x6 canvas, the canvas is now 9x6"):
        rg.plan(found, (9, 6))


def test_the_main_style_fills_what_the_regions_leave(plugin: ModuleType) -> None:
    rg = plugin.regions
    found = _regions(plugin, _mask(plugin, (0, 0, 4, 6), 128), outside="main")
    job = rg.plan(found, (8, 6))
    assert job.area == (0, 0, 8, 6) and job.shown is None
    assert job.rest == bytes(([127] * 4 + [255] * 4) * 6)  # the rest of each pixel
    found.add(rg.Region(_mask(plugin, (0, 0, 8, 6)), "selection 2"))
    assert rg.plan(found, (8, 6)).rest is None  # covered everywhere: no part for it


def test_each_region_becomes_a_raw_style(plugin: ModuleType) -> None:
    rg = plugin.regions
    found = _regions(plugin, _mask(plugin, (0, 0, 2, 6)), _mask(plugin, (6, 0, 2, 6)))
    found.outside = rg.OUTSIDE_MAIN
    loaded: list[str] = []

    def load(path: str) -> Any:
        loaded.append(path)
        return layouts.describe(2, 2, 4, "u8", 0), path.encode().ljust(16, b"-")

    job = rg.plan(found, (8, 6))
    entries = rg.styles(found, job, load, "main.png")
    assert loaded == ["s1.png", "s2.png", "main.png"]
    assert [(e.weight, e.strength) for e in entries] == [(1.0, 10.0), (1.0, 20.0), (1.0, None)]
    mask_desc = layouts.describe(8, 6, 1, "u8", 0)
    assert all(e.mask is not None and e.mask[0] == mask_desc for e in entries)
    assert [e.mask[1] for e in entries] == [*job.shares, job.rest]
    assert entries[0].image == load("s1.png")
    found.regions[1].style_path = " "
    with pytest.raises(rg.RegionError, match=r"region 2 \(selection 2\) has no style image"):
        rg.styles(found, job, load, "main.png")


def test_a_style_that_cannot_be_read_is_said_with_its_region(plugin: ModuleType) -> None:
    rg = plugin.regions
    found = _regions(plugin, _mask(plugin, (0, 0, 2, 6)))

    def load(path: str) -> Any:
        raise ValueError(f"style image not found: {path}")

    job = rg.plan(found, (8, 6))
    with pytest.raises(rg.RegionError, match=r"^region 1 \(selection 1\): style image not found"):
        rg.styles(found, job, load, "main.png")
    found.outside = rg.OUTSIDE_MAIN
    found.regions[0].style_path = ""
    with pytest.raises(rg.RegionError, match="has no style image"):
        rg.styles(found, rg.plan(found, (8, 6)), load, "main.png")


def test_a_document_holds_a_bounded_list(plugin: ModuleType) -> None:
    rg = plugin.regions
    found = rg.DocumentRegions()
    for _ in range(rg.MAX_REGIONS):
        found.add(rg.Region(_mask(plugin, (0, 0, 1, 1)), "selection"))
    with pytest.raises(rg.RegionError, match=f"at most {rg.MAX_REGIONS} regions"):
        found.add(rg.Region(_mask(plugin, (0, 0, 1, 1)), "selection"))
    first = found.regions[0].ident
    assert not found.move(first, -1) and found.move(first, 1)
    assert found.regions[1].ident == first
    assert found.remove(first) and not found.remove(first) and found.find(first) is None
