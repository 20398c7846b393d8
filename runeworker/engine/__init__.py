"""The pure engine: messages, workflow model, resolver, registry, the step planner, executor and
ledgers, flow control, state protocol.

Nothing in this package imports pika, redis, requests or prometheus_client.
"""
