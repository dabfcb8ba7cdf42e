"""How the docker reaches the style engine, and with which settings (no Qt here).

Settings come from three places, later ones winning: the file `nst install-plugin krita`
writes beside this package, the environment (NST_ENDPOINT, NST_TRANSPORT, ...), and what the
user applied under "Engine settings" in the docker, kept in Krita's own settings (kritarc)
so that a reinstall does not lose them. The installer puts the `nst_client` package beside
this one in pykrita.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from krita import Krita

from nst_client import client, job, settings

CONFIG_PATH = Path(__file__).resolve().parent / settings.CONFIG_NAME
CLIENT_NAME = "krita-neural-style"
REINSTALL = "nst install-plugin krita"
#: Krita's settings group for everything the docker remembers.
SETTINGS_GROUP = "neural_style"
#: Where messages send a user to change the endpoint or keys.
WHERE_SETTINGS = "the Engine settings of the Neural Style docker"


def _parsed(key: str, text: str) -> object:
    """A saved value (Krita keeps text) as the type nst_client.settings.load checks."""
    if key == "start_on_demand":
        return {"true": True, "false": False}.get(text.lower(), text)
    if key == "idle_exit_s":
        try:
            return float(text)
        except ValueError:
            return text  # load() names the setting and the bad value
    return text


def saved_overrides() -> dict[str, object]:
    """The Engine settings the user applied in the docker; a blank one is not set."""
    app = Krita.instance()
    out: dict[str, object] = {}
    for key in settings.OVERRIDABLE:
        text = str(app.readSetting(SETTINGS_GROUP, key, "")).strip()
        if text:
            out[key] = _parsed(key, text)
    return out


def save_overrides(values: Mapping[str, object]) -> None:
    """Keep the Engine settings in Krita's settings; keys left out are cleared."""
    app = Krita.instance()
    for key in settings.OVERRIDABLE:
        value = values.get(key)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = "" if value is None else str(value)
        app.writeSetting(SETTINGS_GROUP, key, text)


def installed_settings() -> settings.Settings:
    """The file's settings under the environment's, without the docker's own."""
    return settings.load(CONFIG_PATH)


def load_settings(overrides: Mapping[str, object] | None = None) -> settings.Settings:
    """File, then environment, then the docker's saved Engine settings (or `overrides`,
    values about to be applied); SettingsError says what is wrong with them."""
    chosen = saved_overrides() if overrides is None else overrides
    return settings.load(CONFIG_PATH, overrides=chosen)


def client_name(daemon: settings.Settings) -> str:
    return f"{CLIENT_NAME}/{daemon.resolved_transport()}"


def connect(daemon: settings.Settings) -> client.Client:
    """A Client on the settings' transport (from a worker thread: it may start the bridge)."""
    return client.connect(daemon, client_name(daemon))


#: How a job's messages name the docker's engine settings.
FIELDS = {
    "endpoint": f'"Engine address" in {WHERE_SETTINGS}',
    "curve_server_key": f"the engine's public key in {WHERE_SETTINGS}",
    "curve_client_cert": f"this computer's secret key in {WHERE_SETTINGS}",
    "start_on_demand": f'"Start the engine when needed" in {WHERE_SETTINGS}',
}


def words(daemon: settings.Settings) -> job.ClientWords:
    """How the docker names itself and its settings in a job's messages."""
    return job.ClientWords(client_name(daemon), REINSTALL, FIELDS, WHERE_SETTINGS)


def version_warning(version: str) -> str | None:
    """Words for the user when this plug-in's client is not the engine's version, else None."""
    return client.version_note({"version": version}, REINSTALL) if version else None
