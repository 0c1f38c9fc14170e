"""What the REST port answers to raw HTTP/1.1 bytes that no well-behaved client sends, pinned byte-for-byte
against a real `athena api serve`.

These are the answers of uvicorn's h11 protocol (athena_server/serve.py::_uvicorn) with the request head
bounded at MAX_REQUEST_HEAD_BYTES. uvicorn's faster httptools protocol (llhttp) answers a third of these
differently: it refuses methods outside llhttp's fixed list, control bytes in any header value, obsolete
line folding and bare-LF line ends with its own 400 (its framing differs too: date, server and
content-length headers), answers a missing or repeated Host through the gateway instead, parses absolute-form
targets and strips fragments, refuses targets over 64 KiB, closes HTTP/2.0-versioned requests, and buffers a
head that never ends without bound. Switching protocols therefore fails here: each case says what a client
sees today, so a change of parser is a decision, not an accident."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from athena_server.serve import MAX_REQUEST_HEAD_BYTES
from tests.support.processes import AthenaProcess, running_api

#: The whole answer to a request h11 cannot parse: no date, server or content-length header, framed by
#: closing the connection. The gateway never sees the request, so there is no envelope.
H11_400 = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Invalid HTTP request received."
)
HOST = b"Host: 127.0.0.1\r\n"
SOCKET_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_api(tmp_path_factory.mktemp("http-protocol")) as p:
        yield _rest_port(p)


def _rest_port(p: AthenaProcess) -> int:
    assert p.rest_port is not None
    return p.rest_port


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
    s.settimeout(SOCKET_TIMEOUT_S)
    return s


def _until_closed(s: socket.socket) -> bytes:
    """Every byte the server sends before it closes the connection."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


class _Reader:
    """Responses off one connection, one at a time: pipelined answers may share a read."""

    def __init__(self, s: socket.socket) -> None:
        self.s, self.buf = s, b""

    def _more(self) -> None:
        chunk = self.s.recv(65536)
        assert chunk, f"closed with {self.buf!r} unread"
        self.buf += chunk

    def response(self, bodyless: bool = False) -> tuple[bytes, bytes]:
        """(head, body) of the next content-length framed response (`bodyless`: the answer to HEAD)."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        size = 0 if bodyless else int(_header(head, b"content-length") or 0)
        while len(self.buf) < size:
            self._more()
        body, self.buf = self.buf[:size], self.buf[size:]
        return head, body

    def closed(self) -> bool:
        return not self.buf and self.s.recv(65536) == b""


def _exchange(port: int, raw: bytes) -> tuple[bytes, bytes]:
    with _connect(port) as s:
        s.sendall(raw)
        return _Reader(s).response()


def _refused(port: int, raw: bytes, piece: int = 0) -> bytes:
    """The whole answer to `raw` up to the server's close; sent in pieces of `piece` bytes when given, so
    the server holds an incomplete head between reads."""
    with _connect(port) as s:
        step = piece or len(raw)
        for start in range(0, len(raw), step):
            try:
                s.sendall(raw[start : start + step])
            except (BrokenPipeError, ConnectionResetError):
                break  # refused mid-send: the answer is already waiting
            if piece:
                time.sleep(0.001)
        return _until_closed(s)


def _get(target: bytes = b"/api/v1/capabilities", headers: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\n" + HOST + headers + b"\r\n"


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == name:
            return value.strip()
    return None


# -- requests h11 cannot parse: its own plain-text 400, then close ------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_get(headers=b"Bad Name: x\r\n"), id="space-in-header-name"),
        pytest.param(_get(headers=b"a@b: x\r\n"), id="separator-in-header-name"),
        pytest.param(_get(headers=b"X-A : x\r\n"), id="space-before-colon"),
        pytest.param(_get(headers=b"NoColon\r\n"), id="header-without-colon"),
        pytest.param(_get(headers=b"Authorization: a\x00b\r\n"), id="nul-in-header-value"),
        pytest.param(_get(headers=b"Authorization: a\rb\r\n"), id="bare-cr-in-header-value"),
        pytest.param(_get(method=b"G(T"), id="method-not-a-token"),
        pytest.param(_get(target=b"/api/v1/a b"), id="space-in-target"),
        pytest.param(b"GET /api/v1/capabilities HTTP/1.11\r\n" + HOST + b"\r\n", id="bad-version"),
        pytest.param(b"GET /api/v1/capabilities\r\n\r\n", id="no-version"),
        pytest.param(b"GET /api/v1/capabilities HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(_get(headers=HOST), id="two-hosts"),
        pytest.param(b"\r\n" + _get(), id="leading-crlf"),
        pytest.param(_get(headers=b"Content-Length: x\r\n"), id="content-length-not-a-number"),
        pytest.param(_get(headers=b"Content-Length: 1\r\nContent-Length: 2\r\n"), id="content-lengths-disagree"),
        pytest.param(_get(headers=b"Transfer-Encoding: gzip\r\n"), id="transfer-encoding-not-chunked"),
        pytest.param(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, id="tls-client-hello"),
    ],
)
def test_an_unparsable_request_gets_h11s_plain_400(port: int, raw: bytes) -> None:
    assert _refused(port, raw) == H11_400


def test_a_head_beyond_the_bound_gets_the_plain_400(port: int) -> None:
    """A head still incomplete past MAX_REQUEST_HEAD_BYTES is refused rather than buffered on: one header
    that never ends, and many ordinary headers that together pass the bound."""
    endless = b"GET / HTTP/1.1\r\n" + HOST + b"X-A: " + b"a" * (MAX_REQUEST_HEAD_BYTES + 1024)
    assert _refused(port, endless, piece=4096) == H11_400
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_REQUEST_HEAD_BYTES // 100))
    assert _refused(port, _get(headers=many)[:-2], piece=4096) == H11_400  # no blank line: never complete


# -- requests h11 parses, so the gateway answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"),
    [
        pytest.param(b"a\x7fb", 400, id="del"),
        pytest.param(b"a\x01b", 400, id="control"),
        pytest.param(b"a\tb", 400, id="tab"),
        pytest.param(b"caf\xe9", 400, id="latin-1"),
    ],
)
def test_odd_bytes_in_a_forwarded_header_get_the_envelope(port: int, value: bytes, status: int) -> None:
    head, body = _exchange(port, _get(headers=b"Authorization: " + value + b"\r\n"))
    assert _status(head) == status
    assert _header(head, b"content-type") == b"application/json; charset=utf-8"
    assert b'"code":"CONFIG_ERROR"' in body and b"header 'authorization' must be printable ASCII." in body


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_get(headers=b"X-Unrelated: a\x7fb\r\n"), id="del-in-unrelated-header"),
        pytest.param(_get(headers=b"X-Unrelated: a\x1bb\r\n"), id="control-in-unrelated-header"),
        pytest.param(_get(headers=b"X-A: a\r\n b\r\n"), id="obsolete-line-folding"),
        pytest.param(b"GET /api/v1/capabilities HTTP/1.1\nHost: 127.0.0.1\n\n", id="bare-lf-line-ends"),
        pytest.param(
            _get(target=b"/api/v1/capabilities?q=" + b"a" * (MAX_REQUEST_HEAD_BYTES - 2048)), id="long-target"
        ),
        pytest.param(
            _get(headers=b"X-Unrelated: " + b"a" * (MAX_REQUEST_HEAD_BYTES - 2048) + b"\r\n"), id="long-header"
        ),
    ],
)
def test_tolerated_oddities_reach_the_gateway(port: int, raw: bytes) -> None:
    head, body = _exchange(port, raw)
    assert _status(head) == 200, head
    assert body.startswith(b'{"ok":true')


@pytest.mark.parametrize(
    ("method", "target", "message"),
    [
        (b"FOO", b"/api/v1/capabilities", b"Not found: FOO /api/v1/capabilities"),
        (b"get", b"/api/v1/capabilities", b"Not found: get /api/v1/capabilities"),
        (b"BREW", b"/api/v1/capabilities", b"Not found: BREW /api/v1/capabilities"),
        (b"GET", b"/api/v1/capabilities#frag", b"Not found: GET /api/v1/capabilities%23frag"),
        (b"GET", b"http://127.0.0.1/api/v1/capabilities", b"Not found: GET /http://127.0.0.1/api/v1/capabilities"),
    ],
)
def test_any_token_method_and_the_raw_target_reach_the_gateway(
    port: int, method: bytes, target: bytes, message: bytes
) -> None:
    head, body = _exchange(port, _get(target=target, method=method))
    assert _status(head) == 404
    assert b'"code":"NOT_FOUND"' in body and b'"message":"' + message + b'"' in body


def test_an_absurd_content_length_is_the_envelopes_413(port: int) -> None:
    raw = b"POST /api/v1/runs HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
    head, body = _exchange(port, raw + b"Content-Length: 99999999999999999999\r\n\r\n")
    assert _status(head) == 413
    assert b'"code":"PAYLOAD_TOO_LARGE"' in body


# -- connection handling ------------------------------------------------------------------------------------


def test_keep_alive_and_pipelining(port: int) -> None:
    with _connect(port) as s:
        r = _Reader(s)
        s.sendall(_get())
        assert _status(r.response()[0]) == 200
        s.sendall(_get() + _get(target=b"/api/v1/readiness") + _get(method=b"HEAD", target=b"/nope"))
        assert _status(r.response()[0]) == 200
        assert _status(r.response()[0]) == 200
        head, _ = r.response(bodyless=True)  # HEAD: the 404's head, its content-length, no body
        assert _status(head) == 404 and int(_header(head, b"content-length") or 0) > 0
        s.sendall(_get(headers=b"Connection: close\r\n"))
        head, _ = r.response()
        assert b"\r\nConnection: close" in head  # h11 names the header so; httptools writes it lower-case
        assert r.closed()


def test_http_versions_decide_keep_alive(port: int) -> None:
    with _connect(port) as s:  # HTTP/1.0: answered, then closed
        r = _Reader(s)
        s.sendall(b"GET /api/v1/capabilities HTTP/1.0\r\n" + HOST + b"\r\n")
        head, _ = r.response()
        assert _status(head) == 200 and b"\r\nConnection: close" in head
        assert r.closed()
    with _connect(port) as s:  # HTTP/2.0 in an HTTP/1 request line: h11 keeps the connection
        r = _Reader(s)
        s.sendall(b"GET /api/v1/capabilities HTTP/2.0\r\n" + HOST + b"\r\n")
        head, _ = r.response()
        assert _status(head) == 200 and _header(head, b"connection") is None
        s.sendall(_get())
        assert _status(r.response()[0]) == 200


def test_100_continue_and_chunked_bodies(port: int) -> None:
    body = b'{"sessionId":"http-protocol-%d","input":"hello","provider":"mock"}' % time.time_ns()
    post = b"POST /api/v1/runs HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
    with _connect(port) as s:
        r = _Reader(s)
        s.sendall(post + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert r.response(bodyless=True)[0] == b"HTTP/1.1 100 Continue"
        s.sendall(body)
        assert _status(r.response()[0]) == 200
        second = body.replace(b"protocol-", b"protocol-chunked-")
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second)
        s.sendall(post + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        assert _status(r.response()[0]) == 200
