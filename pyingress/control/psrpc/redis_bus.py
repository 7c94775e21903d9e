"""The Redis side of psrpc: PUBLISH, SUBSCRIBE to exact channels, and the queue lock (protocol.md §4.2).

One client (a small pool) publishes and takes locks; one pub/sub connection carries every subscription and is
read by one task that hands each message to the channel's handler.  Subscriptions are kept here as the set we
want, so that when Redis goes away (restart, network) the reader reconnects with a short backoff and subscribes
the whole set again — what psrpc's redis bus does with its reconciler.  While Redis is away ``publish`` and
``try_lock`` raise ``BusUnavailable`` at once instead of hanging: callers decide whether to queue or refuse.

The config keys are livekit/ingress's (``redis.address``, ``username``, ``password``, ``db``, ``use_tls``,
``sentinel_*``, ``cluster_addresses``), so one of its config files works unchanged.
"""

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from pyingress.config import RedisConfig
from pyingress.control.psrpc.envelope import QUEUE_LOCK_SECONDS
from pyingress.control.psrpc.errors import UNAVAILABLE, PsrpcError

log = logging.getLogger("pyingress.psrpc")

MessageHandler = Callable[[str, bytes], None]

HEALTH_CHECK_S = 15
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 1.0
_FAULTS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, ConnectionError)


class BusUnavailable(PsrpcError):
    """Redis cannot be reached right now."""

    def __init__(self, detail: str) -> None:
        super().__init__(UNAVAILABLE, f"redis unavailable: {detail}")


def _host_port(address: str, default_port: int = 6379) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, default_port
    return host.strip("[]"), int(port)


def open_redis(config: RedisConfig) -> Redis | RedisCluster:
    """A client for ``config`` that fails fast: psrpc's own timeouts and our reconnects do the waiting."""
    common: dict[str, Any] = {
        "username": config.username or None,
        "password": config.password or None,
        "socket_connect_timeout": (config.dial_timeout / 1000) if config.dial_timeout else 2.0,
        "socket_keepalive": True,
        # A link that dies without a FIN (a partition, a host gone) is found by a PING when a connection has been
        # idle this long; the reader wakes as often to let its pub/sub connection be checked.
        "health_check_interval": HEALTH_CHECK_S,
        # One immediate retry: a pooled connection that died with a Redis restart is replaced on the spot; a Redis
        # that is down refuses both tries at once (connection refused), so callers hear about it without delay.
        "retry": Retry(NoBackoff(), 1),
    }
    if config.use_tls:
        common["ssl"] = True
        common["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    if config.cluster_addresses:
        nodes = [ClusterNode(*_host_port(a)) for a in config.cluster_addresses]
        common.pop("retry")
        return RedisCluster(startup_nodes=nodes, **common)
    if config.sentinel_addresses:
        sentinel = Sentinel(
            [_host_port(a, 26379) for a in config.sentinel_addresses],
            sentinel_kwargs={
                "username": config.sentinel_username or None,
                "password": config.sentinel_password or None,
            },
            **common,
        )
        return sentinel.master_for(config.sentinel_master_name, db=config.db)
    host, port = _host_port(config.address)
    return Redis(host=host, port=port, db=config.db, **common)


class RedisBus:
    def __init__(self, client: Redis | RedisCluster) -> None:
        self._redis = client
        self._handlers: dict[str, MessageHandler] = {}
        self._pubsub: PubSub | None = None
        self._subscribed: set[str] = set()  # what the current pub/sub connection has been asked for
        self._changed = asyncio.Event()  # the wanted set changed since the changer last looked
        self._readable = asyncio.Event()  # the pub/sub connection has something to read from
        self._change_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._changer: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self.reconnects = 0
        self.on_connected: Callable[[], None] | None = None  # called each time the subscriptions are back

    @classmethod
    def from_config(cls, config: RedisConfig) -> "RedisBus":
        return cls(open_redis(config))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Check that Redis answers (a worker that cannot reach it must not pretend to run), then read."""
        try:
            await self._redis.ping()
        except _FAULTS as exc:
            raise BusUnavailable(str(exc)) from None
        self._reader = asyncio.create_task(self._read(), name="psrpc-redis-reader")
        self._changer = asyncio.create_task(self._apply_changes(), name="psrpc-redis-subscriptions")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    async def close(self) -> None:
        self._closed = True
        for task in (self._reader, self._changer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._drop_pubsub()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # -- subscriptions --

    def subscribe(self, channel: str, handler: MessageHandler) -> None:
        self._handlers[channel] = handler
        self._changed.set()

    def unsubscribe(self, channel: str) -> None:
        if self._handlers.pop(channel, None) is not None:
            self._changed.set()

    def subscriptions(self) -> set[str]:
        return set(self._handlers)

    async def settled(self) -> None:
        """Return once the pub/sub connection has been asked for exactly the channels wanted now (or Redis is
        away: the reconnect subscribes them all)."""
        while self.connected and self._subscribed != set(self._handlers):
            try:
                await self._reconcile()
            except Exception as exc:
                await self._lost(exc)

    # -- commands --

    async def publish(self, channel: str, payload: bytes) -> None:
        try:
            await self._redis.publish(channel, payload)
        except _FAULTS as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from None

    async def try_lock(self, key: str) -> bool:
        """psrpc's queue lock: ``SET key <random> NX EX 5``; True for the one server that got it."""
        try:
            return bool(await self._redis.set(key, str(random.getrandbits(63)), nx=True, ex=QUEUE_LOCK_SECONDS))
        except _FAULTS as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from None

    # -- the reader --

    async def _read(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._closed:
            try:
                if self._pubsub is None:
                    await self._connect()
                    delay = RECONNECT_MIN_S
                pubsub = self._pubsub
                if pubsub is None or not self._subscribed:
                    # Nothing to read yet (redis-py refuses to read a pub/sub that never subscribed).
                    self._readable.clear()
                    await self._readable.wait()
                    continue
                message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
                if message is not None and message.get("type") == "message":
                    self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection, or Redis refusing us: reconnect with a backoff
                await self._lost(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _apply_changes(self) -> None:
        """SUBSCRIBE / UNSUBSCRIBE as wanted, while the reader waits in its read (a pub/sub connection takes
        commands while a read is pending; the confirmations come back through the reader and are skipped)."""
        while not self._closed:
            await self._changed.wait()
            self._changed.clear()
            if self._pubsub is None:
                continue  # the reader subscribes the whole set when it connects
            try:
                await self._reconcile()
            except Exception as exc:
                await self._lost(exc)

    async def _connect(self) -> None:
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._subscribed = set()
        await self._reconcile()
        if self.reconnects:
            log.info("redis connection back; %d subscriptions restored", len(self._subscribed))
        self.reconnects += 1
        self._connected.set()
        if self.on_connected is not None:
            self.on_connected()

    async def _reconcile(self) -> None:
        async with self._change_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            wanted = set(self._handlers)
            add, remove = wanted - self._subscribed, self._subscribed - wanted
            if add:
                await pubsub.subscribe(*sorted(add))
            if remove:
                await pubsub.unsubscribe(*sorted(remove))
            self._subscribed = (self._subscribed | add) - remove
            if self._subscribed:
                self._readable.set()

    async def _lost(self, exc: BaseException) -> None:
        if self._connected.is_set():
            log.warning("redis connection lost (%s); reconnecting", str(exc) or type(exc).__name__)
        self._connected.clear()
        await self._drop_pubsub()
        self._readable.set()  # wake the reader to reconnect

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = set()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        handler = self._handlers.get(name)
        if handler is None:
            return  # unsubscribed meanwhile
        payload = data if isinstance(data, bytes) else data.encode()
        try:
            handler(name, payload)
        except Exception:
            log.exception("psrpc handler for %s failed", name)
