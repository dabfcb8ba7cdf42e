"""`nst install-plugin gimp|krita|all`: puts the editor plug-ins (../gimp, ../krita) where the
editors look (Flatpak editors' profiles included), each with a copy of the product's client
package `nst_client` and its settings file; `nst uninstall-plugin` takes them out again.

The plug-ins themselves import no torch and nothing of this package: only `nst_client`.
"""
