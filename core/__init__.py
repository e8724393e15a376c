"""The leaf of Atelier: events, errors, the config base, and the plugin and adapter ports.

Everything else builds on this package; it imports nothing else of the project (a test
checks the import graph). It does no I/O.
"""
