"""Which awaited images a node reports, found in the raw bytes of its `status.images`.

A node lists 50-250 images of up to 5 names each (about 13 KB of its 16 KB of JSON); decoding
every name into a `str` and parsing it is most of a node's cost. `NodeImages.keys` instead
searches the raw array for the short repository names of the awaited images (`bytes.find`, at
C speed), and only the image entries that contain one (`{"names":[...],"sizeBytes":N}`) are
decoded and matched, once per distinct entry: the same image is reported with the same bytes by
every node that has it, so across a cluster an entry is decoded once and then found in a dict.

Exact, for any array the API server can send (ContainerImage objects: `names` and
`sizeBytes`, any strings, any spacing or key order): the plain path (`plain_keys`, decoding
every name) gives the same keys. The raw array has already been validated as JSON by msgspec.
Without a backslash in it every `"` delimits a string, so the `{` before a hit opens the entry
object when a key follows it (see `_opens_object`; else quote parity decides), the first `}`
after the hit closes it if the slice between decodes as an object, and a name contains a
repository name exactly when its bytes do. A backslash anywhere (Go escapes `<none>` as
`\\u003cnone\\u003e`), or any entry that is not as expected, sends the node down the plain path.
"""

from __future__ import annotations

import msgspec

from image_awaiter.core.references import ImageKey, node_image_keys, repository_tails

MAX_ENTRIES = 65536  # distinct matching entries remembered; cleared past this
MAX_MISSES = 64  # rare-byte hits that were not the name, per node, before calibrating again


class _Image(msgspec.Struct):
    names: list[str] | None = None


_entry_decoder = msgspec.json.Decoder(_Image)
_images_decoder = msgspec.json.Decoder(list[_Image] | None)
_NONE: frozenset[ImageKey] = frozenset()
_AFTER_QUOTE_IF_IN_STRING = frozenset(b" \t\r\n:,]}")  # what may follow a string's end
_WHITESPACE = frozenset(b" \t\r\n")


class NodeImages:
    """The awaited keys (`wanted`) among a node's names, from its raw `status.images` JSON."""

    def __init__(self, wanted: frozenset[ImageKey]) -> None:
        self._wanted = wanted
        self._tails = tuple(sorted(tail.encode() for tail in repository_tails(wanted)))
        self._by_entry: dict[bytes, frozenset[ImageKey]] = {}
        self._sets: dict[frozenset[ImageKey], frozenset[ImageKey]] = {_NONE: _NONE}
        self._finders: dict[bytes, _Finder] = {}

    def keys(self, images: bytes) -> frozenset[ImageKey]:
        """The keys of `wanted` that some name in `images` (a JSON array, or null) matches;
        equal results are one shared object."""
        if b"\\" in images:
            return self._shared(plain_keys(images, self._wanted))
        found: frozenset[ImageKey] = _NONE
        for tail in self._tails:
            finder = self._finders.get(tail) or self._calibrate(tail, images)
            finder.misses = 0
            at = finder.find(images, 0)
            while at != -1:
                start = images.rfind(b"{", 0, at)
                end = images.find(b"}", at)
                if start == -1 or end == -1 or not _opens_object(images, start):
                    return self._shared(plain_keys(images, self._wanted))
                entry = images[start : end + 1]
                keys = self._by_entry.get(entry)
                if keys is None:
                    keys = self._entry_keys(entry)
                    if keys is None:
                        return self._shared(plain_keys(images, self._wanted))
                if keys:
                    found = keys if not found else found | keys
                at = finder.find(images, end + 1)
            if finder.misses > MAX_MISSES:  # its rare byte is not rare here
                self._calibrate(tail, images)
        return self._shared(found)

    def _calibrate(self, tail: bytes, images: bytes) -> _Finder:
        finder = self._finders[tail] = _Finder.for_data(tail, images)
        return finder

    def _entry_keys(self, entry: bytes) -> frozenset[ImageKey] | None:
        try:
            names = _entry_decoder.decode(entry).names or []
        except msgspec.DecodeError:  # not one whole object: a `}` inside a name
            return None
        if len(self._by_entry) >= MAX_ENTRIES:
            self._by_entry.clear()
        keys = self._by_entry[entry] = self._shared(node_image_keys(names, wanted=self._wanted))
        return keys

    def _shared(self, keys: frozenset[ImageKey]) -> frozenset[ImageKey]:
        shared = self._sets.get(keys)
        if shared is None:
            if len(self._sets) >= MAX_ENTRIES:
                self._sets.clear()
            shared = self._sets[keys] = keys
        return shared


class _Finder:
    """Finds a repository name in image names faster than `bytes.find`, which scans all 13 KB
    of a node's images at about 2.5 GB/s: `memchr` (about 12 GB/s) for the one byte of the name
    that is rarest in the images seen (calibrated on a node's bytes; a hex digit or `/` would
    be everywhere), each hit then compared whole. A name with no rare byte is found with
    `bytes.find`; `misses` counts the comparisons that failed (per node), to calibrate again."""

    def __init__(self, tail: bytes, rare: int | None) -> None:
        self._tail = tail
        self._byte = b"" if rare is None else tail[rare : rare + 1]
        self._offset = rare or 0
        self.misses = 0

    @classmethod
    def for_data(cls, tail: bytes, data: bytes) -> _Finder:
        counts = {i: data.count(tail[i : i + 1]) for i in range(len(tail))}
        rare = min(counts, key=lambda i: (counts[i], i))
        dense = counts[rare] * 256 > len(data) + 4096  # more than one in 256 bytes
        return cls(tail, None if dense else rare)

    def find(self, data: bytes, start: int) -> int:
        """The first occurrence of the name at or after `start`, or -1."""
        if not self._byte:
            return data.find(self._tail, start)
        offset, tail = self._offset, self._tail
        at = data.find(self._byte, start + offset)
        while at != -1:
            if data.startswith(tail, at - offset):
                return at - offset
            self.misses += 1
            at = data.find(self._byte, at + 1)
        return -1


def _opens_object(data: bytes, brace: int) -> bool:
    """Whether the `{` at `brace` is JSON structure rather than a character of a string, in
    valid JSON without backslashes. If it were in a string, the next `"` would end that string,
    and what follows a string's end is whitespace or one of `:,]}`: so a `{`, whitespace, `"`
    and any other character opens an object. Otherwise the count of quotes before it decides."""
    after = brace + 1
    while after < len(data) and data[after] in _WHITESPACE:
        after += 1
    if (
        after + 1 < len(data)
        and data[after] == 0x22  # "
        and data[after + 1] not in _AFTER_QUOTE_IF_IN_STRING
    ):
        return True
    return data.count(b'"', 0, brace) % 2 == 0


def plain_keys(images: bytes, wanted: frozenset[ImageKey]) -> frozenset[ImageKey]:
    """The plain path: every name decoded, then matched (`node_image_keys`)."""
    try:
        entries = _images_decoder.decode(images) or []
    except msgspec.DecodeError as error:
        raise ValueError(f"status.images: {error}") from None
    names = [name for entry in entries for name in entry.names or []]
    return node_image_keys(names, wanted=wanted)
