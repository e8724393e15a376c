"""Built-in plugins: each subpackage exposes ``plugin = bot.plugin_api.Plugin(...)``."""
