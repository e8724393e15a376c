"""Built-in plugins: each subpackage exposes ``plugin = core.plugin.Plugin(...)``."""
