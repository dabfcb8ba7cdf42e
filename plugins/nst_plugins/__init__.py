"""`nst install-plugin HOST`: puts the editor plug-ins (../gimp, ../krita) where the editors
look, each with a copy of the product's client package `nst_client` and its settings file.

The plug-ins themselves import no torch and nothing of this package: only `nst_client`.
"""
