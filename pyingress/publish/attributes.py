"""Participant attributes the ingress sets while it publishes: what its media says (a URL's MPEG-TS SCTE-35 splice
sets ``ingress.outOfNetwork.eventID``, ingress.md §1.6), sent as UpdateParticipantMetadata on the signal
connection (protocol.md §5.3; the join token grants ``canUpdateOwnMetadata``).

An empty value removes the attribute (livekit-server deletes a key set to ""), which is how the reference clears
the event id when the splice returns to the network.  Updates go out one at a time, in the order they were set,
on the join that is current; a fresh join (a new participant, no attributes) and a resumed signal connection get
every attribute set so far again, so a viewer never sees a stale value after a reconnect.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping

from pyingress.publish.livekit import signal as sig
from pyingress.publish.room_join import Join

logger = logging.getLogger(__name__)


class ParticipantAttributes:
    """The attributes set so far and the updates still to send (``run`` sends them)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.updates_sent = 0
        self._pending: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    def set(self, attributes: Mapping[str, str], joined: bool) -> None:
        """Record ``attributes``; queued for sending when a join is up (else the next join sends them all)."""
        if not attributes:
            return
        self.values.update(attributes)
        if joined:
            self._pending.put_nowait(dict(attributes))

    def resend(self) -> None:
        """A join (or a resumed signal connection) is up: every attribute set so far goes to it."""
        if self.values:
            self._pending.put_nowait(dict(self.values))

    async def run(self, current: Callable[[], Join | None]) -> None:
        """Send queued updates on ``current()``'s signal connection, while it is ready; until cancelled."""
        while True:
            update = await self._pending.get()
            join = current()
            if join is None or not join.ready:
                continue  # no participant now: the next join or resume resends everything
            try:
                await join.signal.send(sig.encode_update_attributes(update))
            except sig.SignalClosed as exc:
                logger.info("attributes %s not sent (%s): sent again after the reconnect", update, exc.reason)
                continue
            self.updates_sent += 1
            logger.info("participant attributes set: %s", update)
