"""Small widgets the docker's panels share, so that they wrap and scale the same way.

The docker must fit a narrow column (260 px): every label here wraps, and the preview follows
the docker's width instead of asking for a fixed size.
"""

from __future__ import annotations

from typing import Any

from .qt import (
    ALIGN_CENTER,
    KEEP_ASPECT,
    SIZE_PREFERRED,
    SMOOTH,
    QLabel,
    QPixmap,
    QSize,
    QSizePolicy,
    QWidget,
    pyqtSignal,
)

ERROR_STYLE = "color: #c0392b;"
WARNING_STYLE = "color: #d35400;"
#: The preview keeps this aspect and follows the docker's width, up to PREVIEW_MAX_H high.
PREVIEW_W, PREVIEW_H = 200, 150
PREVIEW_MAX_H = 360


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

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
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

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt's name)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        return min(PREVIEW_MAX_H, width * PREVIEW_H // PREVIEW_W)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(PREVIEW_W, PREVIEW_H)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(PREVIEW_W // 4, PREVIEW_H // 4)

    def show_image(self, image: Any) -> None:
        self._image = image
        self._fit()

    def show_text(self, text: str) -> None:
        self._image = None
        self.setText(text)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._image is not None:
            w, h = max(1, self.width() - 2), max(1, self.height() - 2)
            self.setPixmap(QPixmap.fromImage(self._image.scaled(w, h, KEEP_ASPECT, SMOOTH)))
