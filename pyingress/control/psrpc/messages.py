"""The protobuf messages psrpc and livekit-server's ingress RPCs use that livekit-protocol (PyPI) does not ship.

Built at import time as descriptors in the default pool, so no code generation step exists (DESIGN.md,
"Dependencies").  Field numbers and names are those of psrpc v0.7.2 ``internal/internal.proto`` and livekit
protocol's ``rpc/ingress.proto`` / ``rpc/io.proto`` as used by livekit-server v1.13.5 (protocol.md §4.1, §4.2).
Package names stay ``internal`` and ``rpc``: the full name is what a Go peer reads from ``type_url``.

Only the messages the ingress worker reads or writes are here (psrpc streams are not used by ingress).
"""

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2, message_factory
from google.protobuf.message import Message
from livekit.protocol import ingress as _livekit_ingress  # registers livekit_ingress.proto in the pool

F = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.Default()

# (name, number, type, label, type_name) — type_name for messages, fully qualified with a leading dot.
_Field = tuple[str, int, int, int, str]
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def _f(name: str, number: int, kind: int, type_name: str = "", label: int = OPT) -> _Field:
    return (name, number, kind, label, type_name)


def _message(
    file: descriptor_pb2.FileDescriptorProto, name: str, fields: list[_Field], maps: dict[str, int] | None = None
) -> None:
    """Add message ``name``; ``maps`` names its map<string, string> fields with their numbers."""
    msg = file.message_type.add(name=name)
    for field_name, number, kind, label, type_name in fields:
        field = msg.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    for field_name, number in (maps or {}).items():
        entry_name = "".join(part.capitalize() for part in field_name.split("_")) + "Entry"
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=OPT)
        entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=OPT)
        msg.field.add(
            name=field_name,
            number=number,
            type=F.TYPE_MESSAGE,
            label=REP,
            type_name=f".{file.package}.{name}.{entry_name}",
        )


def _psrpc_internal() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="pyingress/psrpc_internal.proto",
        package="internal",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    s, b, i64, boolean, flt, msg = F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_INT64, F.TYPE_BOOL, F.TYPE_FLOAT, F.TYPE_MESSAGE
    any_type = ".google.protobuf.Any"
    _message(file, "Msg", [_f("type_url", 1, s), _f("value", 2, b), _f("channel", 3, s)])
    _message(
        file,
        "Request",
        [
            _f("request_id", 1, s),
            _f("client_id", 2, s),
            _f("sent_at", 3, i64),
            _f("expiry", 4, i64),
            _f("multi", 5, boolean),
            _f("request", 6, msg, any_type),
            _f("raw_request", 8, b),
        ],
        maps={"metadata": 7},
    )
    _message(
        file,
        "Response",
        [
            _f("request_id", 1, s),
            _f("server_id", 2, s),
            _f("sent_at", 3, i64),
            _f("response", 4, msg, any_type),
            _f("error", 5, s),
            _f("code", 6, s),
            _f("raw_response", 7, b),
            _f("error_details", 8, msg, any_type, REP),
        ],
    )
    _message(file, "ClaimRequest", [_f("request_id", 1, s), _f("server_id", 2, s), _f("affinity", 3, flt)])
    _message(file, "ClaimResponse", [_f("request_id", 1, s), _f("server_id", 2, s)])
    return file


def _rpc_ingress() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="pyingress/rpc_ingress.proto",
        package="rpc",
        syntax="proto3",
        dependency=[_livekit_ingress.DESCRIPTOR.name],
    )
    s, boolean, msg = F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_MESSAGE
    info = ".livekit.IngressInfo"
    _message(file, "ListActiveIngressRequest", [])
    _message(file, "IngressSession", [_f("ingress_id", 1, s), _f("resource_id", 2, s)])
    _message(
        file,
        "ListActiveIngressResponse",
        [_f("ingress_ids", 1, s, label=REP), _f("ingress_sessions", 2, msg, ".rpc.IngressSession", REP)],
    )
    _message(file, "DeleteWHIPResourceRequest", [_f("resource_id", 1, s), _f("stream_key", 2, s)])
    _message(
        file,
        "ICERestartWHIPResourceRequest",
        [
            _f("resource_id", 1, s),
            _f("stream_key", 2, s),
            _f("user_fragment", 3, s),
            _f("password", 4, s),
            _f("candidates", 5, s, label=REP),
            _f("raw_trickle_ice_sdpfrag", 6, s),
            _f("if_match", 7, s),
        ],
    )
    _message(file, "ICERestartWHIPResourceResponse", [_f("trickle_ice_sdpfrag", 1, s), _f("etag", 2, s)])
    _message(
        file,
        "WHIPRTCConnectionNotifyRequest",
        [
            _f("participant_id", 1, s),
            _f("closed", 2, boolean),
            _f("video", 3, msg, ".livekit.InputVideoState"),
            _f("audio", 4, msg, ".livekit.InputAudioState"),
        ],
    )
    _message(
        file,
        "StartIngressRequest",
        [_f("info", 1, msg, info), _f("token", 2, s), _f("ws_url", 3, s)],
        maps={"logging_fields": 4, "feature_flags": 5},
    )
    _message(file, "KillIngressSessionRequest", [_f("session", 1, msg, ".rpc.IngressSession")])
    # rpc/io.proto (ingress part)
    _message(file, "GetIngressInfoRequest", [_f("ingress_id", 1, s), _f("stream_key", 2, s)])
    _message(
        file,
        "GetIngressInfoResponse",
        [_f("info", 1, msg, info), _f("token", 2, s), _f("ws_url", 3, s), _f("project_id", 6, s)],
        maps={"logging_fields": 4, "feature_flags": 5},
    )
    _message(file, "UpdateIngressStateRequest", [_f("ingress_id", 1, s), _f("state", 2, msg, ".livekit.IngressState")])
    return file


def _load(file: descriptor_pb2.FileDescriptorProto) -> None:
    try:
        _POOL.FindFileByName(file.name)
    except KeyError:
        _POOL.Add(file)


def _class(full_name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


_load(_psrpc_internal())
_load(_rpc_ingress())

# psrpc's envelope and bus messages (package ``internal``).
Msg = _class("internal.Msg")
Request = _class("internal.Request")
Response = _class("internal.Response")
ClaimRequest = _class("internal.ClaimRequest")
ClaimResponse = _class("internal.ClaimResponse")

# livekit protocol ``rpc`` messages of the ingress services.
ListActiveIngressRequest = _class("rpc.ListActiveIngressRequest")
ListActiveIngressResponse = _class("rpc.ListActiveIngressResponse")
IngressSession = _class("rpc.IngressSession")
DeleteWHIPResourceRequest = _class("rpc.DeleteWHIPResourceRequest")
ICERestartWHIPResourceRequest = _class("rpc.ICERestartWHIPResourceRequest")
ICERestartWHIPResourceResponse = _class("rpc.ICERestartWHIPResourceResponse")
WHIPRTCConnectionNotifyRequest = _class("rpc.WHIPRTCConnectionNotifyRequest")
StartIngressRequest = _class("rpc.StartIngressRequest")
KillIngressSessionRequest = _class("rpc.KillIngressSessionRequest")
GetIngressInfoRequest = _class("rpc.GetIngressInfoRequest")
GetIngressInfoResponse = _class("rpc.GetIngressInfoResponse")
UpdateIngressStateRequest = _class("rpc.UpdateIngressStateRequest")

Empty = empty_pb2.Empty

TYPE_URL_PREFIX = "type.googleapis.com/"


def type_url(message: Message) -> str:
    return TYPE_URL_PREFIX + message.DESCRIPTOR.full_name
