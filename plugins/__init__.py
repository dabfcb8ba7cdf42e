"""Editor plug-ins (import name `nst_plugins`) and their installer.

Each host's glue lives in its folder (`gimp/`, `krita/`); the plug-ins import no torch. At
install time each gets a copy of the product's pure-Python client (`nst_client/`: protocol,
client, layouts) so that the protocol is defined once and shared.
"""
