"""Small widgets the docker's panels share, so that they wrap and scale the same way.

The docker must fit a narrow column (260 px): every label here wraps, and the preview follows
the docker's width instead of asking for a fixed size.
"""

from __future__ import annotations

from typing import Any

from nst_client.params import MAX_TIME_BUDGET_S, SPECS
from nst_client.progress import duration_text, parse_duration

from .qt import (
    ALIGN_CENTER,
    KEEP_ASPECT,
    SIZE_PREFERRED,
    SMOOTH,
    VALID,
    VALID_SO_FAR,
    QLabel,
    QPixmap,
    QSize,
    QSizePolicy,
    QSpinBox,
    QWidget,
    pyqtSignal,
)

ERROR_STYLE = "color: #c0392b;"
WARNING_STYLE = "color: #d35400;"
#: The preview keeps this aspect and follows the docker's width, up to PREVIEW_MAX_H high.
PREVIEW_W, PREVIEW_H = 200, 150
PREVIEW_MAX_H = 360


def tip(name: str, off: str = "", typing: str = "") -> str:
    """A control's tooltip: the parameter's help from the one definition (nst_client.params),
    after what the control's off value says ("Off, or ...") and with how to type it."""
    text = SPECS[name].help
    text = f"{off}, or {text}" if off else f"{text[:1].upper()}{text[1:]}"
    return f"{text} ({typing})" if typing else text


def wrapped(text: str, parent: QWidget, name: str = "") -> QLabel:
    """A label that wraps: a QLabel's default single line would widen a narrow docker."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    if name:
        label.setObjectName(name)
    return label


class ClickableLabel(QLabel):
    """Wrapped words that say `clicked` when pressed, for a checkbox beside them."""

    clicked = pyqtSignal()

    def __init__(self, text: str, parent: QWidget) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)

    def mouseReleaseEvent(self, event: Any) -> None:
        super().mouseReleaseEvent(event)
        self.clicked.emit()


class PreviewBox(QLabel):
    """The live preview: as wide as the docker allows, 4:3, the picture scaled inside."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__("preview", parent)
        self._image: Any = None
        self.setAlignment(ALIGN_CENTER)
        self.setStyleSheet("border: 1px solid palette(mid);")
        policy = QSizePolicy(SIZE_PREFERRED, SIZE_PREFERRED)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMaximumHeight(PREVIEW_MAX_H)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return min(PREVIEW_MAX_H, width * PREVIEW_H // PREVIEW_W)

    def sizeHint(self) -> QSize:
        return QSize(PREVIEW_W, PREVIEW_H)

    def minimumSizeHint(self) -> QSize:
        return QSize(PREVIEW_W // 4, PREVIEW_H // 4)

    def show_image(self, image: Any) -> None:
        self._image = image
        self._fit()

    def show_text(self, text: str) -> None:
        self._image = None
        self.setText(text)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._image is not None:
            w, h = max(1, self.width() - 2), max(1, self.height() - 2)
            self.setPixmap(QPixmap.fromImage(self._image.scaled(w, h, KEEP_ASPECT, SMOOTH)))


#: The time limit control's arrow steps, in seconds (0 = off); typing gives any time.
TIME_LIMIT_STEPS = (
    0, 15, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600,
    5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
)  # fmt: skip


class DurationBox(QSpinBox):
    """A time in seconds, shown and typed as a person says it ("1 min 30 s", "90s", "2m",
    "1:30"); 0 shows as `off_text`. The arrows walk TIME_LIMIT_STEPS."""

    def __init__(self, parent: QWidget, off_text: str = "Off") -> None:
        super().__init__(parent)
        self.setRange(0, int(MAX_TIME_BUDGET_S))
        self.setSpecialValueText(off_text)
        self.setAccelerated(True)

    def textFromValue(self, value: int) -> str:
        return duration_text(value)

    def valueFromText(self, text: str | None) -> int:
        seconds = self._seconds(text or "")
        return self.value() if seconds is None else seconds

    def validate(self, text: str | None, pos: int) -> tuple[Any, str, int]:
        text = text or ""
        seconds = self._seconds(text)
        ok = seconds is not None and seconds <= self.maximum()
        return (VALID if ok else VALID_SO_FAR), text, pos

    def _seconds(self, text: str) -> int | None:
        if text.strip().lower() == self.specialValueText().lower():
            return 0
        seconds = parse_duration(text)
        return None if seconds is None else int(round(seconds))

    def stepBy(self, steps: int) -> None:
        ladder = TIME_LIMIT_STEPS
        now = self.value()
        if steps > 0:
            at = next((i for i, v in enumerate(ladder) if v > now), len(ladder)) - 1
        else:
            at = next((i for i, v in enumerate(ladder) if v >= now), len(ladder))
        at = min(max(at + steps, 0), len(ladder) - 1)
        self.setValue(ladder[at])
