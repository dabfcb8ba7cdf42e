"""Krita plug-in "Neural Style": a docker that restyles the active layer through the NST daemon.

Loaded by Krita's pykrita from this folder (see ../neural_style.desktop); it only registers the
docker, everything else happens when the docker is created.
"""

from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

from .docker import DOCKER_ID, NeuralStyleDocker

Krita.instance().addDockWidgetFactory(
    DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, NeuralStyleDocker)
)
