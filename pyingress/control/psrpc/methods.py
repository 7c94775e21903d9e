"""The psrpc methods of the ingress services with their four flags, as livekit protocol's generated code registers
them (``rpc/ingress.psrpc.go``, ``rpc/io.psrpc.go`` at the version livekit-server v1.13.5 pins; protocol.md §4.1).

The flags decide the flow: ``require_claim`` adds the claim exchange, ``affinity`` makes the client collect bids
instead of taking the first, ``multi`` gathers every server's answer, ``queue`` makes servers race for a Redis lock
so that one instance per request goes on.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    service: str
    name: str
    affinity: bool = False
    multi: bool = False
    require_claim: bool = True
    queue: bool = True


# IngressInternal: livekit-server → any worker.
START_INGRESS = Method("IngressInternal", "StartIngress", affinity=True, require_claim=True, queue=False)
LIST_ACTIVE_INGRESS = Method("IngressInternal", "ListActiveIngress", multi=True, require_claim=False, queue=False)

# IngressHandler: livekit-server → the worker holding a session (topic: ingress id, or resource id for WHIP).
UPDATE_INGRESS = Method("IngressHandler", "UpdateIngress")
DELETE_INGRESS = Method("IngressHandler", "DeleteIngress")
DELETE_WHIP_RESOURCE = Method("IngressHandler", "DeleteWHIPResource")
ICE_RESTART_WHIP_RESOURCE = Method("IngressHandler", "ICERestartWHIPResource")
WHIP_RTC_CONNECTION_NOTIFY = Method("IngressHandler", "WHIPRTCConnectionNotify", require_claim=False)

# IOInfo: a worker → livekit-server.  CreateIngress answers google.protobuf.Empty in v1.13.5's protocol.
CREATE_INGRESS = Method("IOInfo", "CreateIngress")
GET_INGRESS_INFO = Method("IOInfo", "GetIngressInfo")
UPDATE_INGRESS_STATE = Method("IOInfo", "UpdateIngressState")
