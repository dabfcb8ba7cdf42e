"""Every PyQt import of the plug-in lives here, so that Krita 6 (PyQt6) needs changes only here.

Enum members are resolved once into module constants because PyQt6 only has scoped enums
(``QImage.Format.Format_RGBA8888``) while older PyQt5 only has unscoped ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from PyQt5.QtCore import QObject, QSize, Qt, QThread, QTimer, pyqtSignal
    from PyQt5.QtGui import QIcon, QImage, QPixmap, QValidator
    from PyQt5.QtWidgets import (
        QApplication,
        QCheckBox,
        QComboBox,
        QDockWidget,
        QDoubleSpinBox,
        QFileDialog,
        QFrame,
        QGridLayout,
        QHBoxLayout,
        QLabel,
        QLineEdit,
        QMenu,
        QProgressBar,
        QPushButton,
        QScrollArea,
        QSizePolicy,
        QSlider,
        QSpinBox,
        QToolButton,
        QVBoxLayout,
        QWidget,
    )

    QT_API = "PyQt5"
except ImportError:  # Krita 6. mypy checks the PyQt5 names above (PyQt6 has the same).
    if not TYPE_CHECKING:
        from PyQt6.QtCore import QObject, QSize, Qt, QThread, QTimer, pyqtSignal  # noqa: F401
        from PyQt6.QtGui import QIcon, QImage, QPixmap, QValidator  # noqa: F401
        from PyQt6.QtWidgets import (  # noqa: F401
            QApplication,
            QCheckBox,
            QComboBox,
            QDockWidget,
            QDoubleSpinBox,
            QFileDialog,
            QFrame,
            QGridLayout,
            QHBoxLayout,
            QLabel,
            QLineEdit,
            QMenu,
            QProgressBar,
            QPushButton,
            QScrollArea,
            QSizePolicy,
            QSlider,
            QSpinBox,
            QToolButton,
            QVBoxLayout,
            QWidget,
        )

    QT_API = "PyQt6"


def _enum(owner: Any, scope: str, name: str) -> Any:
    """owner.scope.name (PyQt6, recent PyQt5) or owner.name (older PyQt5)."""
    scoped = getattr(owner, scope, None)
    if scoped is not None and hasattr(scoped, name):
        return getattr(scoped, name)
    return getattr(owner, name)


FORMAT_RGBA8888 = _enum(QImage, "Format", "Format_RGBA8888")
FORMAT_RGBA64 = _enum(QImage, "Format", "Format_RGBA64")
FORMAT_GREY8 = _enum(QImage, "Format", "Format_Grayscale8")
ALIGN_CENTER = _enum(Qt, "AlignmentFlag", "AlignCenter")
HORIZONTAL = _enum(Qt, "Orientation", "Horizontal")
KEEP_ASPECT = _enum(Qt, "AspectRatioMode", "KeepAspectRatio")
SMOOTH = _enum(Qt, "TransformationMode", "SmoothTransformation")
TEXT_SELECTABLE = _enum(Qt, "TextInteractionFlag", "TextSelectableByMouse")
SIZE_EXPANDING = _enum(QSizePolicy, "Policy", "Expanding")
SIZE_PREFERRED = _enum(QSizePolicy, "Policy", "Preferred")
SIZE_FIXED = _enum(QSizePolicy, "Policy", "Fixed")
SCROLLBAR_OFF = _enum(Qt, "ScrollBarPolicy", "ScrollBarAlwaysOff")
NO_FRAME = _enum(QFrame, "Shape", "NoFrame")
STYLED_PANEL = _enum(QFrame, "Shape", "StyledPanel")
ARROW_RIGHT = _enum(Qt, "ArrowType", "RightArrow")
ARROW_DOWN = _enum(Qt, "ArrowType", "DownArrow")
ARROW_UP = _enum(Qt, "ArrowType", "UpArrow")
INSTANT_POPUP = _enum(QToolButton, "ToolButtonPopupMode", "InstantPopup")
TEXT_BESIDE_ICON = _enum(Qt, "ToolButtonStyle", "ToolButtonTextBesideIcon")
ALIGN_RIGHT_CENTER = _enum(Qt, "AlignmentFlag", "AlignRight") | _enum(
    Qt, "AlignmentFlag", "AlignVCenter"
)
COMBO_SHRINKS = _enum(QComboBox, "SizeAdjustPolicy", "AdjustToMinimumContentsLengthWithIcon")
TOOLTIP_ROLE = _enum(Qt, "ItemDataRole", "ToolTipRole")
VALID = _enum(QValidator, "State", "Acceptable")
VALID_SO_FAR = _enum(QValidator, "State", "Intermediate")


def qimage_bytes(image: Any) -> bytes:
    """The pixel bytes of a QImage (rows are unpadded for the formats used here)."""
    size = image.sizeInBytes() if hasattr(image, "sizeInBytes") else image.byteCount()
    ptr = image.constBits()
    ptr.setsize(size)
    return bytes(ptr)


def qimage_from_bytes(data: bytes, width: int, height: int, bytes_per_line: int, fmt: Any) -> Any:
    """A QImage that owns a copy of data (QImage(bytes, ...) would only borrow it)."""
    return QImage(data, width, height, bytes_per_line, fmt).copy()
