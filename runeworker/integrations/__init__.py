"""The integration catalog: upstream Rune's 45 `integration.<provider>.<service>.<tool>` node types
(Gmail, Google Sheets, Jira, Microsoft Outlook, Telegram, Dropbox, Slack).

`spec` is the vocabulary (an argument, a tool), `connector` the one path every tool takes to the
network (the http node's request core), and one module per provider declares its tools. Importing
a provider module registers its tools as node types; `runeworker.engine.registry.load()` imports
every module of this package, as it does for `runeworker.nodes`. docs/INTEGRATIONS.md lists the
kinds with their arguments and credentials.
"""
