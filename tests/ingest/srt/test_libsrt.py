"""The libsrt binding against the real library: what works, and every error path the doors rely on."""

import ctypes
import socket
import threading
import time

import pytest

from pyingress.ingest.srt.libsrt import (
    MAX_PAYLOAD_SIZE,
    Caller,
    Errno,
    Opt,
    Reject,
    SockStatus,
    SrtError,
    SrtSocket,
    parse_sockaddr,
    reject_name,
    sockaddr,
    version,
)
from tests.ingest.srt.pair import connected_pair, listening


def test_the_library_is_libsrt_1_5() -> None:
    assert version().startswith("1.5.")


def test_socket_addresses_round_trip() -> None:
    assert parse_sockaddr(sockaddr("10.1.2.3", 65535)) == ("10.1.2.3", 65535)
    assert parse_sockaddr(sockaddr("::1", 8890)) == ("::1", 8890)
    assert parse_sockaddr(b"") == ("", 0) and parse_sockaddr(b"\xff\xff" + bytes(30)) == ("", 0)
    with pytest.raises(OSError):
        sockaddr("example.com", 1)  # names are resolved by the caller, never here


def test_reject_names_are_libsrt_s() -> None:
    assert reject_name(1404) == "SRT_REJX_NOTFOUND" and reject_name(10) == "SRT_REJ_BADSECRET"
    assert reject_name(2042) == "2042"


def test_a_listener_accepts_a_caller_with_its_streamid_and_data_flows() -> None:
    seen: list[Caller] = []
    with listening(lambda caller: seen.append(caller)) as listener:
        caller, accepted = connected_pair(listener, "#!::r=key,m=publish")
        assert accepted.get_str(Opt.STREAMID) == "#!::r=key,m=publish"
        assert seen[0].streamid == "#!::r=key,m=publish" and seen[0].address[0] == "127.0.0.1"
        assert seen[0].handshake_version == 5
        assert accepted.state() is SockStatus.CONNECTED and accepted.get_int(Opt.LATENCY) == 120
        for _ in range(5):
            caller.send(b"\x47" + bytes(1315))
        buf = ctypes.create_string_buffer(MAX_PAYLOAD_SIZE)
        assert accepted.recv_into(buf) == 1316 and buf.raw[0] == 0x47
        stats = accepted.stats()
        assert stats.packets_received == 5 and stats.latency_ms == 120 and stats.packets_lost == 0
        caller.close()
        with pytest.raises(SrtError) as broken:
            while True:
                accepted.recv_into(buf)
        assert broken.value.code in (Errno.ECONNLOST, Errno.ENOCONN)
        accepted.close()


def test_a_rejection_reaches_the_caller_with_its_reason() -> None:
    with listening(lambda caller: Reject.X_FORBIDDEN) as listener:
        caller = SrtSocket.create()
        with pytest.raises(SrtError) as refused:
            caller.connect(*listener.local_address())
        assert refused.value.code == Errno.ECONNREJ and refused.value.reject == Reject.X_FORBIDDEN
        assert "SRT_REJX_FORBIDDEN" in str(refused.value)
        caller.close()


def test_a_callback_that_raises_rejects_instead_of_accepting() -> None:
    def broken(caller: Caller) -> int | None:
        raise ZeroDivisionError

    with listening(broken) as listener:
        caller = SrtSocket.create()
        with pytest.raises(SrtError) as refused:
            caller.connect(*listener.local_address())
        assert refused.value.reject == Reject.X_ISE
        caller.close()


def test_a_wrong_or_missing_passphrase_is_refused_by_libsrt() -> None:
    with listening(passphrase="the right passphrase") as listener:
        wrong = SrtSocket.create()
        wrong.set(Opt.PASSPHRASE, "a wrong passphrase")
        with pytest.raises(SrtError) as refused:
            wrong.connect(*listener.local_address())
        assert refused.value.reject == Reject.BADSECRET
        none = SrtSocket.create()
        with pytest.raises(SrtError) as refused:
            none.connect(*listener.local_address())
        assert refused.value.reject == Reject.UNSECURE
        caller, accepted = connected_pair(listener, passphrase="the right passphrase")
        assert accepted.state() is SockStatus.CONNECTED
        for sock in (wrong, none, caller, accepted):
            sock.close()


def test_binding_errors_say_what_is_wrong() -> None:
    with listening() as listener:
        second = SrtSocket.create()
        second.bind("127.0.0.1", listener.local_address()[1])
        with pytest.raises(SrtError) as taken:
            second.listen(5)
        assert taken.value.code == Errno.EDUPLISTEN
        second.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        sock = SrtSocket.create()
        with pytest.raises(SrtError) as busy:
            sock.bind("127.0.0.1", udp.getsockname()[1])
        assert busy.value.code == Errno.ESOCKFAIL
        sock.close()
    with pytest.raises(SrtError) as short:
        SrtSocket.create().set(Opt.PASSPHRASE, "short")
    assert short.value.code == Errno.EINVPARAM


def test_connecting_to_nobody_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))  # a port that answers nothing
        caller = SrtSocket.create()
        caller.set(Opt.CONNTIMEO, 500)
        started = time.monotonic()
        with pytest.raises(SrtError) as silent:
            caller.connect("127.0.0.1", udp.getsockname()[1])
        assert silent.value.code == Errno.ENOSERVER and time.monotonic() - started < 5
        caller.close()


def test_a_socket_closed_from_another_thread_unblocks_its_reader() -> None:
    with listening() as listener:
        caller, accepted = connected_pair(listener)
        errors: list[SrtError] = []

        def read() -> None:
            try:
                accepted.recv_into(ctypes.create_string_buffer(MAX_PAYLOAD_SIZE))
            except SrtError as error:
                errors.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.2)
        accepted.close()
        accepted.close()  # idempotent
        reader.join(5)
        assert not reader.is_alive() and errors
        with pytest.raises(SrtError) as closed:
            accepted.recv_into(ctypes.create_string_buffer(MAX_PAYLOAD_SIZE))
        assert closed.value.code == Errno.EINVSOCK
        caller.close()


def test_a_read_timeout_is_an_error_of_its_own() -> None:
    with listening() as listener:
        caller, accepted = connected_pair(listener)
        accepted.set(Opt.RCVTIMEO, 200)
        with pytest.raises(SrtError) as idle:
            accepted.recv_into(ctypes.create_string_buffer(MAX_PAYLOAD_SIZE))
        assert idle.value.code == Errno.ETIMEOUT
        caller.close()
        accepted.close()


def test_accept_on_a_closed_listener_fails() -> None:
    with listening() as listener:
        failed: list[SrtError] = []

        def accept() -> None:
            try:
                listener.accept()
            except SrtError as error:
                failed.append(error)

        thread = threading.Thread(target=accept)
        thread.start()
        time.sleep(0.2)
        listener.close()
        thread.join(5)
        assert failed and not thread.is_alive()
