"""The `nst` application: the command line (`nst stylize|demo|daemon|status|install-plugin`)
and the bundled demo. It sits above every other package: it runs the engine (nst_core) for a
local job, the client's one job path (nst_client.job) for a daemon job, starts the daemon
(nst_daemon) and installs the plug-ins (nst_plugins); nothing imports it.

- `cli`: the parser and the commands' dispatch
- `options`: the job options, made from nst_client.params
- `stylize`: `nst stylize` (and the demo's run), locally or on the daemon
- `engine_commands`: `nst daemon start|stop|status` and `nst status`
- `demo`: the bundled photos (scikit-image) and generated paintings
"""
