"""Platform adapters: the only place platform SDKs (discord, telegram) may be imported.

Each adapter turns platform objects into ``core.events`` events, hands them to the router
and renders the reply stream; it decides nothing else. Import adapters by module
(``bot.adapters.console``) so that one platform's SDK is never needed by another.
"""
