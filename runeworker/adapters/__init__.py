"""Adapters: the thin edges to RabbitMQ (`amqp`) and Redis (`redis_connect` makes the client,
`redis_state` is the state store over it, its Lua in `redis_ledger` and `redis_flow`).

Each translates its library's exceptions into `runeworker.errors`; adapters never import
each other, and only the child wing (`runeworker.child`) wires them to the engine.
"""
