"""Framework-independent internals of sharedsession."""
