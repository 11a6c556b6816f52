"""Reading a chunked watch body in blocks: the lines are those of the de-chunked body, however
the bytes are framed into chunks and however they arrive in reads."""

from __future__ import annotations

import io
import random
import socket

import pytest

from image_awaiter.kube.chunked import ChunkError, EndedEarly, chunked_lines, reader


def chunked(*chunks: bytes, trailer: bytes = b"\r\n") -> bytes:
    return b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\n" + trailer


class Trickle:
    """A socket file that returns at most `size` bytes per read, as a slow server would."""

    def __init__(self, data: bytes, size: int) -> None:
        self._file = io.BytesIO(data)
        self._size = size

    def readinto1(self, view: memoryview) -> int:
        return self._file.readinto(view[: self._size])


def lines_of(data: bytes, *, size: int = 1 << 20, block: int = 1 << 18) -> list[bytes]:
    """Each line copied as it arrives: a line may be a view of the buffer, valid until the next."""
    return [bytes(line) for line in chunked_lines(Trickle(data, size).readinto1, block=block)]


EVENTS = [b'{"type":"ADDED","object":{"n":%d,"p":"%s"}}' % (i, b"x" * (i * 37)) for i in range(12)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (chunked(b"a\n", b"b\n"), [b"a", b"b"]),  # one event per chunk, as kube-apiserver writes
        (chunked(b"a\nb\n"), [b"a", b"b"]),  # several lines in one chunk
        (chunked(b"a", b"b\nc", b"\n"), [b"ab", b"c"]),  # lines across chunks
        (chunked(b"a\n\n \nb"), [b"a", b"b"]),  # blank lines skipped; a last line without \n
        (chunked(b"a\n", trailer=b"X-Trailer: 1\r\n\r\n"), [b"a"]),  # trailer fields
        (chunked(b"a\n", trailer=b""), [b"a"]),  # no final CRLF: accepted, as urllib3 does
        (b"2;name=value\r\na\n\r\n0\r\n\r\n", [b"a"]),  # a chunk extension
        (b"2\na\n\r\n0\n\n", [b"a"]),  # bare LF after the size lines
        (b"0\r\n\r\n", []),
    ],
)
def test_the_lines_are_those_of_the_de_chunked_body(body: bytes, expected: list[bytes]) -> None:
    assert lines_of(body) == expected
    assert lines_of(body, size=1) == expected


@pytest.mark.parametrize("seed", range(6))
def test_any_framing_and_any_read_sizes_give_the_same_lines(seed: int) -> None:
    rng = random.Random(seed)
    text = b"".join(event + b"\n" for event in EVENTS)
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 20)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    body = chunked(*chunks)
    # a block smaller than one chunk makes the reader grow its buffer
    got = lines_of(body, size=rng.randint(100, 5000), block=rng.choice([64, 1024, 1 << 18]))
    assert got == EVENTS


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (chunked(b"a\n")[:-5], EndedEarly),  # the connection closed before the last chunk
        (b"5\r\nab", EndedEarly),  # ... in the middle of a chunk
        (b"", EndedEarly),
        (b"zz\r\na\n\r\n0\r\n\r\n", ChunkError),  # not a size
        (b"-2\r\na\n\r\n0\r\n\r\n", ChunkError),
        (b"0x2\r\na\n\r\n0\r\n\r\n", ChunkError),
        (b"2\r\na\nXX0\r\n\r\n", ChunkError),  # chunk data not followed by CRLF
        (b"1" * 5000, ChunkError),  # a size line that never ends
    ],
)
def test_a_broken_or_foreign_framing_is_an_error(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        lines_of(body, size=3000)


def test_lines_arrive_before_the_body_ends() -> None:
    reads = iter([b"2\r\na\n\r\n", b"2\r\nb\n\r\n0\r\n\r\n"])

    def read_into(view: memoryview) -> int:
        data = next(reads)
        view[: len(data)] = data
        return len(data)

    lines = chunked_lines(read_into)
    assert next(lines) == b"a"  # the second read has not happened yet
    assert [bytes(line) for line in lines] == [b"b"]


def test_a_line_within_one_chunk_is_a_view_of_the_buffer_rewritten_by_later_reads() -> None:
    body = chunked(*(event + b"\n" for event in EVENTS))  # one event per chunk
    seen = []
    for line in chunked_lines(Trickle(body, 700).readinto1, block=1024):
        assert isinstance(line, memoryview)  # not a copy
        seen.append((line, bytes(line)))
    assert [copy for _, copy in seen] == EVENTS  # copied in time: every line as sent
    assert [bytes(view) for view, _ in seen] != EVENTS  # views kept past their turn: overwritten


def test_bytes_buffered_with_the_headers_are_read_without_waiting_for_more() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        ours.settimeout(5)  # a read that waits for more than the server sent times out
        server.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"2\r\na\n\r\n2\r\nb\n\r\n")
        file = ours.makefile("rb")
        assert file.readline() == b"HTTP/1.1 200 OK\r\n"  # as http.client reads the headers
        assert file.readline() == b"\r\n"
        lines = chunked_lines(reader(file))
        assert [bytes(next(lines)), bytes(next(lines))] == [b"a", b"b"]
        server.sendall(b"2\r\nc\n\r\n0\r\n\r\n")  # later bytes come straight from the socket
        assert [bytes(line) for line in lines] == [b"c"]
