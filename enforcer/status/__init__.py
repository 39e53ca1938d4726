"""`enforcer status`: the status document, how the daemon serves it, how the CLI fetches it."""
