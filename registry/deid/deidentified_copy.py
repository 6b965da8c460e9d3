"""A file's de-identified archive copy made from the one read and parse ingest already did of it.

`profile.deidentified_bytes` parses the whole file again and has pydicom write every element, Pixel Data
included. Here the header dataset that header reading parsed up to Pixel Data (`dicom_headers.parse_instance`)
goes through the same profile (`profile.deidentified`) and the same writer (`dicom_encoding.encoded_file`),
reusing the previous file's parts where they agree (`registry.deid.deidentified_header`), and the source's Pixel
Data element follows byte for byte: the profile keeps Pixel Data and drops every element after it, so the
copy is the de-identified header followed by that one element.

The source bytes are copied only where they are exactly what pydicom writes for that element; otherwise
(`pixel_element_span` returns None) the copy is made from the whole file (`deidentified_bytes`):
- little-endian, not deflated, a public transfer syntax whose VR encoding (implicit or explicit) is the one
  the data set was read with (pydicom writes the copy in the file meta's syntax);
- explicit VR OB or OW with zero reserved bytes (pydicom would rewrite UN as OB/OW);
- a defined length only in a native syntax, even (pydicom pads an odd value with a zero byte and counts it);
- an undefined length only in a compressed syntax, at least one encapsulated item, the items leading to a
  Sequence Delimitation Item of length 0 (where pydicom's reader ends the value, and what its writer writes).

Hand-written because pydicom has no way to write a dataset's elements before Pixel Data and splice the
original element: reading Pixel Data into the dataset is the cost this module avoids.
"""

from __future__ import annotations

import struct

import pydicom
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from registry.deid.deidentified_header import header_bytes
from registry.deid.profile import deidentified_bytes
from registry.dicom_headers import ParsedInstance

PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"
ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
SEQUENCE_DELIMITER_LE = b"\xfe\xff\xdd\xe0"
UNDEFINED_LENGTH = 0xFFFFFFFF


def deidentified_copy(parsed: ParsedInstance, key: bytes, pseudonym: str) -> bytes:
    """`deidentified_bytes(parsed.data, key, pseudonym)`, byte for byte, without parsing the file again
    where its Pixel Data element can be copied as it is (see the module's description)."""
    return b"".join(deidentified_copy_parts(parsed, key, pseudonym))


def deidentified_copy_parts(parsed: ParsedInstance, key: bytes, pseudonym: str) -> tuple[bytes, memoryview | bytes]:
    """`deidentified_copy` as (header, Pixel Data element): the element a view into `parsed.data`, so that
    the copy is written (`os.writev`) without joining the two into a third buffer."""
    span = pixel_element_span(parsed.dataset, parsed.data, parsed.pixel_offset)
    if span is None:
        return deidentified_bytes(parsed.data, key, pseudonym), b""
    start, end = span
    return header_bytes(parsed.dataset, key, pseudonym), memoryview(parsed.data)[start:end]


def pixel_element_span(ds: pydicom.Dataset, data: bytes, offset: int) -> tuple[int, int] | None:
    """(start, end) of the Pixel Data element at `offset` in `data` when pydicom would write it with these
    very bytes into the de-identified copy of `ds`'s file; None when the copy must be made by pydicom."""
    syntax = _written_syntax(ds)
    if syntax is None or data[offset : offset + 4] != PIXEL_DATA_TAG_LE:
        return None
    if syntax.is_implicit_VR:
        if len(data) < offset + 8:
            return None
        (length,) = struct.unpack_from("<I", data, offset + 4)
        value_start = offset + 8
    else:
        if len(data) < offset + 12 or data[offset + 4 : offset + 6] not in (b"OB", b"OW"):
            return None
        if data[offset + 6 : offset + 8] != b"\0\0":
            return None
        (length,) = struct.unpack_from("<I", data, offset + 8)
        value_start = offset + 12
    if length == UNDEFINED_LENGTH:
        if not syntax.is_compressed:
            return None
        end = _encapsulated_end(data, value_start)
        return None if end is None else (offset, end)
    if syntax.is_compressed or length % 2 or value_start + length > len(data):
        return None
    return offset, value_start + length


def _written_syntax(ds: pydicom.Dataset) -> UID | None:
    """The transfer syntax `deidentified` gives the copy, when Pixel Data bytes read in it can be copied."""
    implicit, little = ds.original_encoding
    if implicit is None or not little:
        return None
    meta = getattr(ds, "file_meta", None)
    declared = meta.get("TransferSyntaxUID") if meta is not None else None
    # As `deidentified` chooses it: the file meta's, else the encoding the data set was read in.
    syntax = UID(str(declared)) if declared else (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
    if (not syntax.is_transfer_syntax or syntax.is_private or syntax == DeflatedExplicitVRLittleEndian
            or not syntax.is_little_endian or syntax.is_implicit_VR != bool(implicit)):
        return None
    return syntax


def _encapsulated_end(data: bytes, value_start: int) -> int | None:
    """The end of the Sequence Delimitation Item closing encapsulated Pixel Data whose items start at
    `value_start`, found as pydicom's reader finds it (item by item, to the first delimiter tag); None when
    the items do not lead there, when there is no item (pydicom refuses to write that) or the delimiter's
    length is not 0 (pydicom writes 0)."""
    at = value_start
    while True:
        tag = data[at : at + 4]
        if tag == SEQUENCE_DELIMITER_LE:
            if at == value_start or data[at + 4 : at + 8] != b"\0\0\0\0":
                return None
            return at + 8
        if tag != ITEM_TAG_LE or at + 8 > len(data):
            return None
        (length,) = struct.unpack_from("<I", data, at + 4)
        at += 8 + length
