"""A thin ctypes binding of libsrt 1.5 (Debian ``libsrt1.5-openssl``): the calls the SRT doors need, nothing more.

The PyAV wheel has no libsrt (reference feasibility.md §8), so SRT sockets come from the system library.  Facts
are from libsrt's ``docs/API/API-functions.md`` and ``srtcore/srt.h`` at v1.5.1 (Debian 12's version):

- Every call returns -1 (``SRT_ERROR``) on failure and leaves a thread-local error; ``_check`` reads it in the
  same thread at once and raises ``SrtError`` with libsrt's code and words.
- ctypes releases the GIL during a foreign call, so a thread blocked in ``srt_accept``/``srt_recvmsg`` costs the
  event loop nothing.
- The listen callback runs in libsrt's receiver thread (one per UDP port, shared by the listener and every socket
  accepted from it): whatever it does delays all of them.  ``ListenHook`` turns an exception into a rejection,
  because an exception escaping a ctypes callback is printed and 0 — accept — is returned.
- Closing a socket may wait for locks held by that receiver thread while a listen callback runs; callers that also
  wait on the event loop from the callback must not close sockets on the loop's thread (the doors close from
  worker threads).
"""

import ctypes
import ctypes.util
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

# Debian's libsrt1.5-openssl installs libsrt.so.1.5; the GnuTLS flavour (ffmpeg's dependency) is the fallback.
LIBRARY_NAMES = ("libsrt.so.1.5", "libsrt-gnutls.so.1.5")

SRT_ERROR = -1
SRT_INVALID_SOCK = -1
LIVE_PAYLOAD_SIZE = 1316  # 7 MPEG-TS packets: libsrt's default SRTO_PAYLOADSIZE in live mode
MAX_PAYLOAD_SIZE = 1456  # SRT_LIVE_MAX_PLSIZE: the largest live message (MTU 1500 - UDP 28 - SRT 16)
MAX_STREAMID = 512  # SRTO_STREAMID's limit (access-control.md)


class Opt(IntEnum):
    """SRT_SOCKOPT values from srt.h (v1.5.1)."""

    RCVSYN = 2
    RCVBUF = 6
    UDP_RCVBUF = 9
    RCVTIMEO = 14
    REUSEADDR = 15
    STATE = 17
    LATENCY = 23
    PASSPHRASE = 26
    PBKEYLEN = 27
    KMSTATE = 28
    CONNTIMEO = 36
    RCVKMSTATE = 41
    RCVLATENCY = 43
    PEERLATENCY = 44
    STREAMID = 46
    PAYLOADSIZE = 49
    TRANSTYPE = 50
    ENFORCEDENCRYPTION = 53
    PEERIDLETIMEO = 55


class SockStatus(IntEnum):
    INIT = 1
    OPENED = 2
    LISTENING = 3
    CONNECTING = 4
    CONNECTED = 5
    BROKEN = 6
    CLOSING = 7
    CLOSED = 8
    NONEXIST = 9


class Errno(IntEnum):
    """The SRT_ERRNO values the doors act on (1000 × major + minor, srt.h)."""

    UNKNOWN = -1
    SUCCESS = 0
    ECONNSETUP = 1000
    ENOSERVER = 1001
    ECONNREJ = 1002
    ESOCKFAIL = 1003
    ESECFAIL = 1004
    ESCLOSED = 1005
    ECONNFAIL = 2000
    ECONNLOST = 2001
    ENOCONN = 2002
    EINVOP = 5000
    EINVPARAM = 5003
    EINVSOCK = 5004
    EUNBOUNDSOCK = 5005
    ENOLISTEN = 5006
    EINVALMSGAPI = 5009
    EDUPLISTEN = 5011
    ELARGEMSG = 5012
    EBINDCONFLICT = 5015
    EASYNCRCV = 6002
    ETIMEOUT = 6003


class Reject(IntEnum):
    """Rejection reasons: libsrt's own (SRT_REJ_*, below 1000) and the access-control ones a listener callback
    may set (SRT_REJX_*, ``srtcore/access_control.h``, HTTP codes + 1000)."""

    UNKNOWN = 0
    SYSTEM = 1
    PEER = 2
    RESOURCE = 3
    ROGUE = 4
    BACKLOG = 5
    IPE = 6
    CLOSE = 7
    VERSION = 8
    RDVCOOKIE = 9
    BADSECRET = 10
    UNSECURE = 11
    MESSAGEAPI = 12
    CONGESTION = 13
    FILTER = 14
    GROUP = 15
    TIMEOUT = 16
    X_FALLBACK = 1000
    X_KEY_NOTSUP = 1001
    X_BAD_REQUEST = 1400
    X_UNAUTHORIZED = 1401
    X_OVERLOAD = 1402
    X_FORBIDDEN = 1403
    X_NOTFOUND = 1404
    X_BAD_MODE = 1405
    X_UNACCEPTABLE = 1406
    X_CONFLICT = 1409
    X_NOTSUP_MEDIA = 1415
    X_LOCKED = 1423
    X_ISE = 1500
    X_UNIMPLEMENTED = 1501
    X_DOWN = 1503


def reject_name(code: int) -> str:
    """``SRT_REJX_NOTFOUND`` for 1404, ``SRT_REJ_BADSECRET`` for 10, the number for anything else."""
    try:
        name = Reject(code).name
    except ValueError:
        return str(code)
    return f"SRT_REJX_{name[2:]}" if name.startswith("X_") else f"SRT_REJ_{name}"


class SrtError(Exception):
    """A libsrt call failed: ``code`` is its SRT_ERRNO, ``message`` libsrt's words (``reject`` for ECONNREJ)."""

    def __init__(self, call: str, code: int, message: str, reject: int | None = None) -> None:
        self.call = call
        self.code = code
        self.message = message
        self.reject = reject
        detail = f" ({reject_name(reject)})" if reject is not None else ""
        super().__init__(f"{call}: {message}{detail}")


class PerfMon(ctypes.Structure):
    """``struct CBytePerfMon`` (SRT_TRACEBSTATS) exactly as srt.h v1.5.1 lays it out; new fields only ever go at the
    end (srt.h's rule), so the prefix we read is stable."""

    _fields_ = [
        ("msTimeStamp", ctypes.c_int64),
        ("pktSentTotal", ctypes.c_int64),
        ("pktRecvTotal", ctypes.c_int64),
        ("pktSndLossTotal", ctypes.c_int),
        ("pktRcvLossTotal", ctypes.c_int),
        ("pktRetransTotal", ctypes.c_int),
        ("pktSentACKTotal", ctypes.c_int),
        ("pktRecvACKTotal", ctypes.c_int),
        ("pktSentNAKTotal", ctypes.c_int),
        ("pktRecvNAKTotal", ctypes.c_int),
        ("usSndDurationTotal", ctypes.c_int64),
        ("pktSndDropTotal", ctypes.c_int),
        ("pktRcvDropTotal", ctypes.c_int),
        ("pktRcvUndecryptTotal", ctypes.c_int),
        ("byteSentTotal", ctypes.c_uint64),
        ("byteRecvTotal", ctypes.c_uint64),
        ("byteRcvLossTotal", ctypes.c_uint64),
        ("byteRetransTotal", ctypes.c_uint64),
        ("byteSndDropTotal", ctypes.c_uint64),
        ("byteRcvDropTotal", ctypes.c_uint64),
        ("byteRcvUndecryptTotal", ctypes.c_uint64),
        ("pktSent", ctypes.c_int64),
        ("pktRecv", ctypes.c_int64),
        ("pktSndLoss", ctypes.c_int),
        ("pktRcvLoss", ctypes.c_int),
        ("pktRetrans", ctypes.c_int),
        ("pktRcvRetrans", ctypes.c_int),
        ("pktSentACK", ctypes.c_int),
        ("pktRecvACK", ctypes.c_int),
        ("pktSentNAK", ctypes.c_int),
        ("pktRecvNAK", ctypes.c_int),
        ("mbpsSendRate", ctypes.c_double),
        ("mbpsRecvRate", ctypes.c_double),
        ("usSndDuration", ctypes.c_int64),
        ("pktReorderDistance", ctypes.c_int),
        ("pktRcvAvgBelatedTime", ctypes.c_double),
        ("pktRcvBelated", ctypes.c_int64),
        ("pktSndDrop", ctypes.c_int),
        ("pktRcvDrop", ctypes.c_int),
        ("pktRcvUndecrypt", ctypes.c_int),
        ("byteSent", ctypes.c_uint64),
        ("byteRecv", ctypes.c_uint64),
        ("byteRcvLoss", ctypes.c_uint64),
        ("byteRetrans", ctypes.c_uint64),
        ("byteSndDrop", ctypes.c_uint64),
        ("byteRcvDrop", ctypes.c_uint64),
        ("byteRcvUndecrypt", ctypes.c_uint64),
        ("usPktSndPeriod", ctypes.c_double),
        ("pktFlowWindow", ctypes.c_int),
        ("pktCongestionWindow", ctypes.c_int),
        ("pktFlightSize", ctypes.c_int),
        ("msRTT", ctypes.c_double),
        ("mbpsBandwidth", ctypes.c_double),
        ("byteAvailSndBuf", ctypes.c_int),
        ("byteAvailRcvBuf", ctypes.c_int),
        ("mbpsMaxBW", ctypes.c_double),
        ("byteMSS", ctypes.c_int),
        ("pktSndBuf", ctypes.c_int),
        ("byteSndBuf", ctypes.c_int),
        ("msSndBuf", ctypes.c_int),
        ("msSndTsbPdDelay", ctypes.c_int),
        ("pktRcvBuf", ctypes.c_int),
        ("byteRcvBuf", ctypes.c_int),
        ("msRcvBuf", ctypes.c_int),
        ("msRcvTsbPdDelay", ctypes.c_int),
        ("pktSndFilterExtraTotal", ctypes.c_int),
        ("pktRcvFilterExtraTotal", ctypes.c_int),
        ("pktRcvFilterSupplyTotal", ctypes.c_int),
        ("pktRcvFilterLossTotal", ctypes.c_int),
        ("pktSndFilterExtra", ctypes.c_int),
        ("pktRcvFilterExtra", ctypes.c_int),
        ("pktRcvFilterSupply", ctypes.c_int),
        ("pktRcvFilterLoss", ctypes.c_int),
        ("pktReorderTolerance", ctypes.c_int),
        ("pktSentUniqueTotal", ctypes.c_int64),
        ("pktRecvUniqueTotal", ctypes.c_int64),
        ("byteSentUniqueTotal", ctypes.c_uint64),
        ("byteRecvUniqueTotal", ctypes.c_uint64),
        ("pktSentUnique", ctypes.c_int64),
        ("pktRecvUnique", ctypes.c_int64),
        ("byteSentUnique", ctypes.c_uint64),
        ("byteRecvUnique", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class ReceiveStats:
    """What a receiving socket's statistics say (docs/API/statistics.md): totals since the connection began and the
    receive buffer now."""

    packets_received: int  # pktRecvTotal: data packets, retransmitted ones included
    packets_lost: int  # pktRcvLossTotal: gaps detected (each later recovered or dropped)
    packets_retransmitted: int  # pktRcvRetrans summed: retransmitted packets that arrived
    packets_dropped: int  # pktRcvDropTotal: too late to play, never recovered
    packets_undecrypted: int  # pktRcvUndecryptTotal
    bytes_received: int
    rtt_ms: float
    receive_rate_mbps: float
    receive_buffer_ms: int  # msRcvBuf: media waiting in the receiver buffer
    latency_ms: int  # msRcvTsbPdDelay: the negotiated receiver latency


# int (*)(void* opaque, SRTSOCKET ns, int hs_version, const struct sockaddr* peeraddr, const char* streamid)
LISTEN_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)


def _declare(lib: ctypes.CDLL) -> None:
    i32, c_int, vp, cp = ctypes.c_int32, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    signatures: dict[str, tuple[object, list[object]]] = {
        "srt_startup": (c_int, []),
        "srt_getversion": (ctypes.c_uint32, []),
        "srt_create_socket": (i32, []),
        "srt_bind": (c_int, [i32, vp, c_int]),
        "srt_listen": (c_int, [i32, c_int]),
        "srt_accept": (i32, [i32, vp, ctypes.POINTER(c_int)]),
        "srt_listen_callback": (c_int, [i32, LISTEN_CALLBACK, vp]),
        "srt_connect": (c_int, [i32, vp, c_int]),
        "srt_close": (c_int, [i32]),
        "srt_getpeername": (c_int, [i32, vp, ctypes.POINTER(c_int)]),
        "srt_getsockname": (c_int, [i32, vp, ctypes.POINTER(c_int)]),
        "srt_getsockflag": (c_int, [i32, c_int, vp, ctypes.POINTER(c_int)]),
        "srt_setsockflag": (c_int, [i32, c_int, vp, c_int]),
        "srt_recvmsg": (c_int, [i32, vp, c_int]),
        "srt_sendmsg": (c_int, [i32, vp, c_int, c_int, c_int]),
        "srt_getlasterror": (c_int, [ctypes.POINTER(c_int)]),
        "srt_getlasterror_str": (cp, []),
        "srt_clearlasterror": (None, []),
        "srt_bistats": (c_int, [i32, ctypes.POINTER(PerfMon), c_int, c_int]),
        "srt_getsockstate": (c_int, [i32]),
        "srt_getrejectreason": (c_int, [i32]),
        "srt_setrejectreason": (c_int, [i32, c_int]),
        "srt_rejectreason_str": (cp, [c_int]),
        "srt_setloglevel": (None, [c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class LibraryMissing(RuntimeError):
    pass


def library() -> ctypes.CDLL:
    """libsrt, loaded and started once per process (``srt_startup``)."""
    global _lib
    with _lock:
        if _lib is None:
            lib = None
            for name in LIBRARY_NAMES:
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            if lib is None:
                raise LibraryMissing(
                    "libsrt 1.5 is not installed (Debian: apt-get install libsrt1.5-openssl; scripts/setup does it)"
                )
            _declare(lib)
            lib.srt_setloglevel(3)  # LOG_ERR: libsrt's own notices to stderr only when something is wrong
            if lib.srt_startup() < 0:
                raise LibraryMissing(f"srt_startup failed: {_last_error(lib)[1]}")
            _lib = lib
        return _lib


def version() -> str:
    number = library().srt_getversion()
    return f"{number >> 16}.{(number >> 8) & 0xFF}.{number & 0xFF}"


def _last_error(lib: ctypes.CDLL) -> tuple[int, str]:
    code = int(lib.srt_getlasterror(None))
    text = lib.srt_getlasterror_str()
    return code, text.decode(errors="replace") if text else f"SRT error {code}"


def _check(lib: ctypes.CDLL, call: str, result: int, sock: int | None = None) -> int:
    if result != SRT_ERROR:
        return result
    code, message = _last_error(lib)
    reject = int(lib.srt_getrejectreason(sock)) if sock is not None and code == Errno.ECONNREJ else None
    raise SrtError(call, code, message, reject)


def sockaddr(host: str, port: int) -> bytes:
    """``struct sockaddr_in`` or ``sockaddr_in6`` for a numeric address (Linux layout: family in host order)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + packed + bytes(8)
    except OSError:
        packed = socket.inet_pton(socket.AF_INET6, host)  # OSError for anything else: the caller resolves names
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + packed + struct.pack("=I", 0)


def parse_sockaddr(raw: bytes) -> tuple[str, int]:
    """(host, port) of a ``sockaddr_in``/``sockaddr_in6``; ("", 0) for any other family."""
    if len(raw) < 2:
        return "", 0
    (family,) = struct.unpack_from("=H", raw)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack_from("!H", raw, 2)[0]
    return "", 0


_SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)

_STRING_OPTIONS = frozenset({Opt.STREAMID, Opt.PASSPHRASE})


class SrtSocket:
    """One libsrt socket id.  Not thread-safe by itself: the doors give each socket one owning thread, except
    ``close`` (any thread, once) and ``stats`` (a read)."""

    def __init__(self, sock: int) -> None:
        self.lib = library()
        self.id = sock
        self._closed = False

    @classmethod
    def create(cls) -> "SrtSocket":
        lib = library()
        return cls(_check(lib, "srt_create_socket", lib.srt_create_socket()))

    def __repr__(self) -> str:
        return f"<SrtSocket {self.id}{' closed' if self._closed else ''}>"

    # -- options ---------------------------------------------------------------------------------------------

    def set(self, opt: Opt, value: int | bool | str | bytes) -> None:
        if opt in _STRING_OPTIONS:
            data = value.encode() if isinstance(value, str) else bytes(value)
            buf = ctypes.create_string_buffer(data, len(data))
            _check(self.lib, f"srt_setsockflag({opt.name})", self.lib.srt_setsockflag(self.id, opt, buf, len(data)))
            return
        number = ctypes.c_int(int(value))  # bool options take an int too (socketconfig.h cast_optval<bool>)
        result = self.lib.srt_setsockflag(self.id, opt, ctypes.byref(number), ctypes.sizeof(number))
        _check(self.lib, f"srt_setsockflag({opt.name})", result)

    def get_int(self, opt: Opt) -> int:
        number = ctypes.c_int64(0)  # large enough for any option; int options fill the low half
        size = ctypes.c_int(ctypes.sizeof(number))
        result = self.lib.srt_getsockflag(self.id, opt, ctypes.byref(number), ctypes.byref(size))
        _check(self.lib, f"srt_getsockflag({opt.name})", result)
        if size.value == 1:
            return number.value & 0xFF
        if size.value == 4:
            return ctypes.c_int32(number.value & 0xFFFFFFFF).value
        return number.value

    def get_str(self, opt: Opt) -> str:
        buf = ctypes.create_string_buffer(MAX_STREAMID + 1)
        size = ctypes.c_int(len(buf))
        result = self.lib.srt_getsockflag(self.id, opt, buf, ctypes.byref(size))
        _check(self.lib, f"srt_getsockflag({opt.name})", result)
        return buf.raw[: size.value].decode(errors="replace")

    # -- connecting ------------------------------------------------------------------------------------------

    def bind(self, host: str, port: int) -> None:
        addr = sockaddr(host, port)
        _check(self.lib, "srt_bind", self.lib.srt_bind(self.id, addr, len(addr)))

    def listen(self, backlog: int) -> None:
        _check(self.lib, "srt_listen", self.lib.srt_listen(self.id, backlog))

    def local_address(self) -> tuple[str, int]:
        buf = ctypes.create_string_buffer(_SOCKADDR_MAX)
        size = ctypes.c_int(_SOCKADDR_MAX)
        _check(self.lib, "srt_getsockname", self.lib.srt_getsockname(self.id, buf, ctypes.byref(size)))
        return parse_sockaddr(buf.raw[: size.value])

    def set_listen_callback(self, hook: "ListenHook") -> None:
        _check(self.lib, "srt_listen_callback", self.lib.srt_listen_callback(self.id, hook.c_function, None))

    def accept(self) -> tuple["SrtSocket", tuple[str, int]]:
        """Block until a caller's handshake completes (the listen callback accepted it); SrtError when closed."""
        buf = ctypes.create_string_buffer(_SOCKADDR_MAX)
        size = ctypes.c_int(_SOCKADDR_MAX)
        sock = _check(self.lib, "srt_accept", self.lib.srt_accept(self.id, buf, ctypes.byref(size)))
        return SrtSocket(sock), parse_sockaddr(buf.raw[: size.value])

    def connect(self, host: str, port: int) -> None:
        """Caller mode: blocks up to SRTO_CONNTIMEO; a rejection raises SrtError with ``reject`` set."""
        addr = sockaddr(host, port)
        _check(self.lib, "srt_connect", self.lib.srt_connect(self.id, addr, len(addr)), sock=self.id)

    # -- data ------------------------------------------------------------------------------------------------

    def recv_into(self, buf: ctypes.Array[ctypes.c_char]) -> int:
        """One live message into ``buf`` (at least MAX_PAYLOAD_SIZE long); 0 when the peer closed.

        Blocks until the message's time to play (TSBPD) or SRTO_RCVTIMEO; SrtError when the connection broke."""
        return _check(self.lib, "srt_recvmsg", self.lib.srt_recvmsg(self.id, buf, len(buf)))

    def send(self, data: bytes) -> int:
        return _check(self.lib, "srt_sendmsg", self.lib.srt_sendmsg(self.id, data, len(data), -1, 1))

    def state(self) -> SockStatus:
        value = int(self.lib.srt_getsockstate(self.id))
        try:
            return SockStatus(value)
        except ValueError:
            return SockStatus.NONEXIST

    def reject_reason(self) -> int:
        return int(self.lib.srt_getrejectreason(self.id))

    def stats(self, clear: bool = False) -> ReceiveStats:
        perf = PerfMon()
        _check(self.lib, "srt_bistats", self.lib.srt_bistats(self.id, ctypes.byref(perf), int(clear), 1))
        return ReceiveStats(
            packets_received=perf.pktRecvTotal,
            packets_lost=perf.pktRcvLossTotal,
            packets_retransmitted=perf.pktRcvRetrans,
            packets_dropped=perf.pktRcvDropTotal,
            packets_undecrypted=perf.pktRcvUndecryptTotal,
            bytes_received=perf.byteRecvTotal,
            rtt_ms=perf.msRTT,
            receive_rate_mbps=perf.mbpsRecvRate,
            receive_buffer_ms=perf.msRcvBuf,
            latency_ms=perf.msRcvTsbPdDelay,
        )

    def close(self) -> None:
        """Idempotent.  Unblocks this socket's ``accept``/``recv_into`` in other threads (they raise SrtError)."""
        if self._closed:
            return
        self._closed = True
        self.lib.srt_close(self.id)  # an error here means it is gone already: nothing left to free


@dataclass(frozen=True)
class Caller:
    """Who knocks at a listener: what the listen callback gets to decide on."""

    socket: int  # the about-to-be-accepted socket (options set on it apply to this connection)
    address: tuple[str, int]
    streamid: str
    handshake_version: int


class ListenHook:
    """A listen callback in Python: ``decide(caller)`` returns None to accept or a rejection reason (Reject, ≥ 1000)
    to refuse the caller before its handshake completes.  Runs in libsrt's receiver thread: be quick."""

    def __init__(self, decide: Callable[[Caller], int | None]) -> None:
        self.decide = decide
        self.c_function = LISTEN_CALLBACK(self._call)  # kept referenced as long as the listener lives

    def _call(self, opaque: int | None, ns: int, hs_version: int, peer: int | None, streamid: bytes | None) -> int:
        lib = library()
        try:
            address = parse_sockaddr(ctypes.string_at(peer, 28)) if peer else ("", 0)
            caller = Caller(ns, address, (streamid or b"").decode("utf-8", errors="replace"), hs_version)
            reason = self.decide(caller)
        except BaseException:
            reason = Reject.X_ISE
        if reason is None:
            return 0
        lib.srt_setrejectreason(ns, int(reason) if reason >= Reject.X_FALLBACK else int(Reject.X_FALLBACK))
        return -1
