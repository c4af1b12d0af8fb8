"""The Django example of sharedsession: the routes of examples/README.md."""
