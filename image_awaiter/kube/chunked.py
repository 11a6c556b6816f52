"""The lines of an HTTP/1.1 chunked body, read in large blocks.

kube-apiserver writes and flushes each watch event on its own, so a watch response arrives as
one HTTP chunk per event (about 16 KB for a node). Read through urllib3's `stream()`, every
chunk costs a dozen Python calls and two `recv`s into fresh memory; at 65,000 nodes that was
about a third of `check`'s CPU. Here the body is read with `recv_into` into one reused buffer
(a single `recv` returns whatever has arrived, up to the buffer's free space, and blocks only
when nothing has), the chunk framing (RFC 9112 section 7.1: `size[;ext]CRLF data CRLF`, ended
by a zero-size chunk, optional trailer lines and a CRLF) is parsed with `bytes.find` over the
buffer, and each line is copied out once. Lines may span chunks and chunks may hold several
lines; the result is the same as de-chunking first and splitting on newlines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from io import BufferedReader

# A line of a watch stream: bytes, or a view of the read buffer valid until the next line.
Line = bytes | memoryview

BLOCK = 1 << 18  # bytes read at most per `recv`: 16 node events
# After a read that found less than TRICKLE bytes waiting, wait COALESCE seconds before the next:
# a server slower than the reader otherwise wakes it once per event, and on this 2-core machine
# each wake-up cost about 20 us of CPU, as much as decoding the node (README.md, "Benchmarks").
TRICKLE = BLOCK // 4
COALESCE = 0.001
MAX_LINE = 4096  # longest chunk-size or trailer line accepted (urllib3 allows 1,024)
_WHITESPACE = frozenset(b" \t\r\n\x0b\x0c")  # what bytes.strip() strips


def reader(file: BufferedReader) -> Callable[[memoryview], int]:
    """A `read_into` for `chunked_lines` from the buffered socket file of a response whose
    headers were just read: first whatever the file has buffered past the headers, then one
    `recv` per call straight into the view. (`readinto1` would do a blocking `recv` even when
    the file holds buffered bytes, whenever the view is larger than the file's buffer.)"""
    first = True

    def read_into(view: memoryview) -> int:
        nonlocal first
        if first:
            first = False
            data = file.read1(len(view))  # the buffered bytes, or one recv when there are none
            view[: len(data)] = data
            return len(data)
        return file.raw.readinto(view) or 0

    return read_into


class ChunkError(Exception):
    """The body's framing is not chunked encoding, or it ended before its last chunk."""


class EndedEarly(ChunkError):
    """The connection closed before the last chunk."""


def chunked_lines(read_into: Callable[[memoryview], int], *, block: int = BLOCK) -> Iterator[Line]:
    """The non-empty lines (without the newline) of the chunked body that `read_into` reads
    (`reader`: fills the start of the view with what has arrived, waiting only when nothing has;
    returns how much, 0 at the end of the connection).

    A line that lies whole in one chunk is a memoryview of the read buffer, not a copy (a copy
    of a node's 16 KB cost about 1 us of the ~45 us per node): it is valid only until the next
    line is asked for, when the buffer is written again. Decode it before, and keep nothing that
    refers to it (msgspec.Raw does; `bytes()` of it does not). Lines spanning chunks are bytes."""
    reader = _Reader(read_into, block)
    partial: list[bytes] = []  # the start of a line that goes on in the next chunk
    while True:
        start, end = reader.chunk()
        if start == end:
            reader.trailers()
            break
        buffer, view = reader.buffer, reader.view
        while start < end:
            newline = buffer.find(b"\n", start, end)
            if newline == -1:
                partial.append(bytes(view[start:end]))
                break
            if partial:
                line = b"".join(partial) + view[start:newline]
                partial.clear()
                if line.strip():
                    yield line
            elif buffer[start] not in _WHITESPACE or buffer[start:newline].strip():
                yield view[start:newline]
            start = newline + 1
    if partial and (line := b"".join(partial)).strip():
        yield line


class _Reader:
    """The buffer and the chunk framing: `buffer[start:end]` is read but not yet parsed."""

    def __init__(self, read_into: Callable[[memoryview], int], block: int) -> None:
        self._read_into = read_into
        self.buffer = bytearray(block)
        self.view = memoryview(self.buffer)
        self._start = self._end = 0
        self._trickling = False

    def chunk(self) -> tuple[int, int]:
        """The next chunk's data as `buffer[start:end]` (empty for the last chunk), valid until
        the next call."""
        header = self._line()
        size_text = header.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise ChunkError(f"invalid chunk size line {header[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            return self._start, self._start
        self._fill(size + 2)
        start = self._start
        end = start + size
        if self.buffer[end : end + 2] != b"\r\n":
            raise ChunkError("chunk data not followed by CRLF")
        self._start = end + 2
        return start, end

    def trailers(self) -> None:
        """Read the trailer section after the last chunk, up to its empty line (or the end of
        the connection: some servers omit it, which urllib3 accepts too)."""
        try:
            while self._line():
                pass
        except EndedEarly:
            pass

    def _line(self) -> bytes:
        """The next line, without its CRLF (or bare LF)."""
        while True:
            newline = self.buffer.find(b"\n", self._start, self._end)
            if newline != -1:
                line = bytes(self.view[self._start : newline]).rstrip(b"\r")
                self._start = newline + 1
                return line
            if self._end - self._start > MAX_LINE:
                raise ChunkError("chunk size or trailer line too long")
            self._read_more()

    def _fill(self, count: int) -> None:
        """Make `buffer[start:start + count]` read."""
        if count > len(self.buffer):  # one chunk larger than the buffer: grow it
            grown = bytearray(max(count, 2 * len(self.buffer)))
            grown[: self._end - self._start] = self.view[self._start : self._end]
            self.buffer, self.view = grown, memoryview(grown)
            self._start, self._end = 0, self._end - self._start
        while self._end - self._start < count:
            self._read_more()

    def _read_more(self) -> None:
        if self._end == len(self.buffer):  # full: move the unparsed rest to the front
            rest = bytes(self.view[self._start : self._end])
            self.view[: len(rest)] = rest
            self._start, self._end = 0, len(rest)
            if self._end == len(self.buffer):
                raise ChunkError("chunk size or trailer line too long")
        if self._trickling:
            time.sleep(COALESCE)
        read = self._read_into(self.view[self._end :])
        self._trickling = read < TRICKLE
        if not read:
            raise EndedEarly("the connection closed before the last chunk")
        self._end += read
