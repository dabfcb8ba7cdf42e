"""The NST daemon (import name `nst_daemon`): protocol, client and bridge import no torch;
only `nst_daemon.server` loads the engine."""
