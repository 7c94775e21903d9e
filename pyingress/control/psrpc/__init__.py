"""psrpc over Redis, as livekit-server and livekit/ingress speak it (protocol.md §4).

Sans-IO cores — ``envelope`` (the ``internal.Msg`` wrapper and queue lock key), ``client_core`` and
``server_core`` (the request / claim / response state machines, time passed in) — and the asyncio shell around
them: ``redis_bus`` (one Redis connection for publishing and one for subscriptions, reconnecting) and ``rpc``
(clients and servers that decode typed messages).  ``messages`` builds the ``internal.*`` and ``rpc.*`` protobuf
messages that livekit-protocol on PyPI does not ship.
"""
