"""Closing the start race: an OCI runtime wrapper (shim) that has the enforcer put a new
container under its policy between `runc create` and `runc start`, and the daemon side
that answers it (registration socket), plus installing the wrapper into daemon.json."""
