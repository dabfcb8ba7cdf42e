"""The docker's "Engine settings": where the engine is, its keys, starting it on demand.

A fold-out form over the settings the plug-in was installed with. Apply saves only what the
user changed, in Krita's own settings (link.save_overrides), so a later reinstall with another
endpoint still counts for every field left alone; a change that cannot be used is refused with
the reason and nothing is saved. The panel only edits settings: the docker, told through
`applied`, decides what to do with them (watch the engine at the new address).
"""

from __future__ import annotations

from pathlib import Path

from nst_client.settings import Settings, SettingsError

from . import link
from .qt import (
    ARROW_DOWN,
    ARROW_RIGHT,
    SIZE_FIXED,
    SIZE_PREFERRED,
    TEXT_BESIDE_ICON,
    TEXT_SELECTABLE,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .widgets import ERROR_STYLE, ClickableLabel, wrapped

KEY_FILTER = "Key files (*.key *.key_secret);;All files (*)"
#: The idle time offered, in minutes (0 = the engine never exits by itself).
MAX_IDLE_MINUTES = 24 * 60
SAVED = "Saved; the docker uses these settings now."


class EnginePanel(QWidget):
    """The Engine settings fold-out; `applied` carries the Settings in effect after Apply."""

    applied = pyqtSignal(object)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("nst_engine_panel")
        #: The settings' values as the form showed them, to tell what the user changed.
        self._shown: dict[str, object] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)  # lines up with the docker's other rows
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("nst_settings_toggle")
        self.toggle.setText("Engine settings")
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(TEXT_BESIDE_ICON)
        self.toggle.setArrowType(ARROW_RIGHT)
        self.toggle.toggled.connect(self._toggled)
        layout.addWidget(self.toggle)
        self.box = QWidget(self)
        self.box.setObjectName("nst_settings")
        self._build_form(self.box)
        self.box.setVisible(False)
        layout.addWidget(self.box)
        self.fill()

    def _build_form(self, box: QWidget) -> None:
        form = QVBoxLayout(box)
        form.setContentsMargins(8, 0, 0, 0)
        self.details = wrapped("", box, "nst_engine_details")
        self.details.setTextInteractionFlags(TEXT_SELECTABLE)
        form.addWidget(self.details)

        form.addWidget(wrapped("Engine address (endpoint):", box))
        self.endpoint = QLineEdit(box)
        self.endpoint.setObjectName("nst_settings_endpoint")
        self.endpoint.setToolTip(
            "Where the style engine listens, e.g. tcp://127.0.0.1:5757. "
            "Leave empty to use the address the plug-in was installed with."
        )
        form.addWidget(self.endpoint)
        self.server_key = self._key_row(
            box,
            form,
            "Engine's public key (only for an engine on another computer):",
            "nst_settings_server_key",
            "The engine's server.key file, beside its --curve-secret-key",
        )
        self.client_cert = self._key_row(
            box,
            form,
            "This computer's secret key (if that engine only lets known keys in):",
            "nst_settings_client_cert",
            "This client's client.key_secret; its client.key goes in the engine's "
            "--curve-allow folder",
        )
        self.start_on_demand = self._check_row(
            box,
            form,
            "Start the engine when needed",
            "nst_settings_start_on_demand",
            "When no engine answers on this computer, Stylize starts one and it stops "
            "again after the idle time below",
        )
        form.addWidget(wrapped("Stop an engine started here after this long without a job:", box))
        # Tenths of a minute: an idle time set in seconds elsewhere shows as it is, not "never".
        self.idle_minutes = QDoubleSpinBox(box)
        self.idle_minutes.setObjectName("nst_settings_idle_minutes")
        self.idle_minutes.setDecimals(1)
        self.idle_minutes.setRange(0, MAX_IDLE_MINUTES)
        self.idle_minutes.setSingleStep(5)
        self.idle_minutes.setSuffix(" min")
        self.idle_minutes.setSpecialValueText("never")
        self.idle_minutes.setToolTip("0 = the engine keeps running until you stop it")
        form.addWidget(self.idle_minutes)
        apply = QPushButton("Apply", box)
        apply.setObjectName("nst_settings_apply")
        apply.clicked.connect(self._apply_clicked)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(apply)
        form.addLayout(row)
        self.message = wrapped("", box, "nst_settings_message")
        self.message.setTextInteractionFlags(TEXT_SELECTABLE)
        form.addWidget(self.message)

    def _key_row(
        self, box: QWidget, form: QVBoxLayout, text: str, name: str, tip: str
    ) -> QLineEdit:
        """A key file's path with its own Browse…, narrow enough for the docker."""
        form.addWidget(wrapped(text, box))
        edit = QLineEdit(box)
        edit.setObjectName(name)
        edit.setToolTip(tip)
        browse = QPushButton("Browse…", box)
        browse.setObjectName(f"{name}_browse")
        browse.setSizePolicy(SIZE_FIXED, SIZE_PREFERRED)
        browse.clicked.connect(lambda: self._browse_key(edit))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        form.addLayout(row)
        return edit

    def _check_row(
        self, box: QWidget, form: QVBoxLayout, text: str, name: str, tip: str
    ) -> QCheckBox:
        """A checkbox whose words wrap (a QCheckBox's own text never does): clicking the
        words toggles it too."""
        check = QCheckBox(box)
        check.setObjectName(name)
        check.setAccessibleName(text)
        check.setToolTip(tip)
        words = ClickableLabel(text, box)
        words.setToolTip(tip)
        words.clicked.connect(check.toggle)
        row = QHBoxLayout()
        row.addWidget(check)
        row.addWidget(words, 1)
        form.addLayout(row)
        return check

    def show_details(self, text: str) -> None:
        """The engine's technical details (endpoint, device, pid), shown at the form's top."""
        self.details.setText(text)

    def _toggled(self, shown: bool) -> None:
        self.toggle.setArrowType(ARROW_DOWN if shown else ARROW_RIGHT)
        self.box.setVisible(shown)

    def _browse_key(self, edit: QLineEdit) -> None:
        start = str(Path(edit.text()).parent) if edit.text() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a key file", start, KEY_FILTER)
        if path:
            edit.setText(path)

    def _form(self) -> dict[str, object]:
        """The settings as the form holds them, in Settings' units."""
        return {
            "endpoint": self.endpoint.text().strip(),
            "curve_server_key": self.server_key.text().strip(),
            "curve_client_cert": self.client_cert.text().strip(),
            "start_on_demand": self.start_on_demand.isChecked(),
            "idle_exit_s": round(60.0 * self.idle_minutes.value(), 1),
        }

    def fill(self) -> None:
        """Show the settings in effect: the docker's saved ones over the installed ones. When
        those cannot be used, the saved values as they are, so the user can mend them."""
        try:
            shown = link.load_settings()
        except SettingsError as exc:
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(str(exc))
            try:
                shown = link.installed_settings()
            except SettingsError:
                shown = Settings()
            for key, value in link.saved_overrides().items():
                wanted = (
                    bool if key == "start_on_demand" else float if key == "idle_exit_s" else str
                )
                if isinstance(value, wanted):
                    setattr(shown, key, value)
        self.endpoint.setText(shown.endpoint)
        self.server_key.setText(shown.curve_server_key or "")
        self.client_cert.setText(shown.curve_client_cert or "")
        self.start_on_demand.setChecked(shown.start_on_demand)
        self.idle_minutes.setValue(shown.idle_exit_s / 60.0)
        self._shown = self._form()

    def _apply_clicked(self) -> None:
        self.apply()

    def apply(self) -> bool:
        """Check and save what the user changed (Krita's settings), then emit `applied`;
        False, with a message and nothing saved, when the result cannot be used."""
        overrides = link.saved_overrides()
        for key, value in self._form().items():
            if value == self._shown.get(key):
                continue  # untouched: an installed value stays the installed one
            if value == "":
                overrides.pop(key, None)  # cleared: back to the installed value
            else:
                overrides[key] = value
        try:
            daemon = link.load_settings(overrides)
        except SettingsError as exc:
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(f"Not saved: {exc}")
            return False
        link.save_overrides(overrides)
        self.fill()
        self.message.setStyleSheet("")
        self.message.setText(SAVED)
        self.applied.emit(daemon)
        return True
