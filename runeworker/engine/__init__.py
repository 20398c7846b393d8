"""The pure engine: messages, workflow model, resolver, registry, executor, state protocol.

Nothing in this package imports pika, redis, requests or prometheus_client.
"""
