"""A dataset's file bytes exactly as `pydicom.dcmwrite(..., enforce_file_format=True)` writes them, faster.

Writing a dataset built in memory, pydicom decodes every element to a Python value and encodes it again
(`write_dataset`'s re-encoding path). That is most of the cost of an archive copy, and the elements of one
scanner's files repeat from file to file: same tag, same stored bytes, same output. Here each element's
encoding is made by pydicom itself (`Dataset.__getitem__` + `write_data_element`) the first time it is seen
and remembered, keyed by everything the encoding depends on: the tag, the element as stored (VR, length,
value bytes, its encoding) or its value when set in memory, the output encoding and the character sets.
Elements whose
encoding depends on other elements (VRs such as "US or SS" resolved from Pixel Representation), sequences
read from the file or holding more than short text, private and unknown tags and long values (Pixel Data)
always go through pydicom.

The preamble and file meta information are written by `pydicom.dcmwrite` itself (from the dataset's file
meta and its SOP Class and Instance UIDs, all that part depends on); the elements follow in tag order,
each remembered or written by `write_data_element`, after the steps `dcmwrite` and `write_dataset` take
before their loop (Pixel Data's length rule, ambiguous VRs resolved, the character set). Used only with the
pydicom release line whose writer this mirrors (3.0) and the public transfer syntaxes other than deflate;
otherwise the dataset goes through `dcmwrite` unchanged.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Hashable

import pydicom
from pydicom import datadict
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR

MIRRORED_PYDICOM = "3.0."
MAX_REMEMBERED_VALUE = 1024  # bytes: header values repeat, pixel data does not and is costly to key on
MAX_REMEMBERED = 20_000  # element encodings per process (key and bytes each under ~2 kB): at most ~40 MB

_remembered: dict[Hashable, bytes] = {}
_prefixes: dict[Hashable, tuple[bytes, int, bool] | None] = {}  # None: not made from a remembered one
_tag_remembered: dict[int, bool] = {}


def dcmwrite_bytes(ds: Dataset) -> bytes:
    """The bytes `ds.save_as(buffer, enforce_file_format=True)` writes: pydicom's own writer, unchanged."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encoded_file(ds: Dataset) -> bytes:
    """`dcmwrite_bytes(ds)`, reusing element encodings seen before (see the module's description).

    Changes `ds` as pydicom's writer would (elements decoded, ambiguous VRs resolved, Pixel Data's length).
    """
    parts = encoded_parts(ds)
    if parts is None:
        return dcmwrite_bytes(ds)
    prefix, elements = parts
    return prefix + b"".join(made for _tag, made in elements)


def encoded_parts(ds: Dataset) -> tuple[bytes, list[tuple[int, bytes]]] | None:
    """`encoded_file(ds)` in its parts: the preamble and file meta, then each element's bytes with its tag,
    in file order; None where `encoded_file` hands the dataset to `dcmwrite` whole."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if (not pydicom.__version__.startswith(MIRRORED_PYDICOM) or syntax is None or syntax.is_private
            or not syntax.is_transfer_syntax or syntax == DeflatedExplicitVRLittleEndian
            or None not in ds.original_encoding or getattr(ds, "preamble", None) is None
            or any(tag >> 16 in (0, 2) for tag in ds._dict)):
        return None
    implicit, little = syntax.is_implicit_VR, syntax.is_little_endian

    prefix = _file_prefix(ds)

    # What dcmwrite and then write_dataset do before writing the elements, in the same order.
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = syntax.is_compressed
    correct_ambiguous_vr(ds, little)
    charset = ds.get("SpecificCharacterSet", default_encoding)
    context = encoding_context(ds, implicit, little)
    parts: list[tuple[int, bytes]] = []
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # group lengths are not written
        key, made = remembered_element(ds.get_item(tag), context)
        if key is None:
            parts.append((tag, written_element(ds[tag], implicit, little, charset)))
            continue
        if made is None:
            made = written_element(ds[tag], implicit, little, charset)
            remember_element(key, made)
        parts.append((tag, made))
    return prefix, parts


def encoding_context(ds: Dataset, implicit: bool, little: bool) -> Hashable:
    """What an element's encoding in `ds` depends on besides the element: the encoding and character sets."""
    charset = ds.get("SpecificCharacterSet", default_encoding)
    return (implicit, little, _frozen(charset), _frozen(ds._character_set))


def remembered_element(elem: DataElement | RawDataElement, context: Hashable) -> tuple[Hashable | None, bytes | None]:
    """(the key of `elem`'s encoding in `context`, the encoding when made before); (None, None): not remembered."""
    key = _key(elem, context)
    return key, (None if key is None else _remembered.get(key))


def remember_element(key: Hashable, made: bytes) -> None:
    if len(_remembered) >= MAX_REMEMBERED:
        _remembered.clear()
        _prefixes.clear()
    _remembered[key] = made


def _written_prefix(ds: Dataset) -> bytes:
    """Preamble, "DICM" and file meta as dcmwrite writes them: it reads only these of the dataset to do so."""
    shell = Dataset()
    shell.file_meta = ds.file_meta
    shell.preamble = ds.preamble
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if keyword in ds:
            shell[keyword] = ds[keyword]
    made = dcmwrite_bytes(shell)
    meta_length = struct.unpack("<I", made[140:144])[0]  # (0002,0000) UL right after "DICM"
    return made[: 144 + meta_length]


def _file_prefix(ds: Dataset) -> bytes:
    """`_written_prefix(ds)`, made from a remembered one where only the SOP Instance UID differs.

    Files of one series share their file meta but for (0002,0003), whose value has the same length for
    every mapped UID of one length: that element's value is replaced in place (the group length does not
    change). A remembered prefix is used only after it reproduced a second file's pydicom-written prefix.
    """
    meta = ds.file_meta
    uid, sop = meta.get("MediaStorageSOPInstanceUID"), ds.get("SOPInstanceUID")
    others = []
    for tag in sorted(meta._dict):
        elem = meta._dict[tag]
        if tag == 0x00020003:
            continue
        if isinstance(elem, RawDataElement) or not isinstance(elem.value, str | bytes):
            return _written_prefix(ds)
        others.append((tag, elem.VR, elem.value))
    if not isinstance(uid, str) or uid != sop or not uid.isascii():
        return _written_prefix(ds)
    value = uid.encode("ascii") + (b"\0" if len(uid) % 2 else b"")
    key = (bytes(ds.preamble), tuple(others), str(ds.get("SOPClassUID")), len(value))
    if key not in _prefixes:
        made = _written_prefix(ds)
        element = b"\x02\x00\x03\x00UI" + struct.pack("<H", len(value)) + value
        at = made.find(element)
        _prefixes[key] = (made, at + 8, False) if at >= 0 and made.count(element) == 1 else None
        return made
    known = _prefixes[key]
    if known is None:
        return _written_prefix(ds)
    template, at, checked = known
    candidate = template[:at] + value + template[at + len(value):]
    if not checked:
        made = _written_prefix(ds)
        _prefixes[key] = (template, at, True) if made == candidate else None
        return made
    return candidate


def _frozen(value: object) -> Hashable:
    if isinstance(value, list | tuple | MultiValue):
        return tuple(str(v) for v in value)
    return str(value)


def _tag_is_remembered(tag: BaseTag) -> bool:
    """Whether a tag's encoding depends only on its own element: public, known, one VR (a sequence's
    only when it is set in memory with text items, see `_items_key`)."""
    known = _tag_remembered.get(tag)
    if known is None:
        known = (not tag.is_private and datadict.dictionary_has_tag(tag) and tag != 0x00080005
                 and datadict.dictionary_VR(tag) not in AMBIGUOUS_VR)
        _tag_remembered[tag] = known
    return known


def _key(elem: DataElement | RawDataElement, context: Hashable) -> Hashable | None:
    """What the encoding of `elem` depends on, or None when it is not remembered."""
    if not _tag_is_remembered(elem.tag):
        return None
    if isinstance(elem, RawDataElement):
        value = elem.value
        if datadict.dictionary_VR(elem.tag) == "SQ" or elem.VR == "SQ":
            return None  # read from the file: its items are decoded with their parents' context
        if value is None or len(value) > MAX_REMEMBERED_VALUE or elem.length == 0xFFFFFFFF:
            return None
        return (elem.tag, elem.VR, elem.length, bytes(value), elem.is_implicit_VR, elem.is_little_endian, context)
    value = elem.value
    if elem.VR == "SQ":
        items = _items_key(elem)
        return None if items is None else (elem.tag, "SQ", elem.is_undefined_length, items, context)
    if type(value) is str and len(value) <= MAX_REMEMBERED_VALUE:
        return (elem.tag, elem.VR, "set", value, context)
    if isinstance(value, MultiValue) and all(type(v) is str for v in value) and sum(map(len, value)) <= 1024:
        return (elem.tag, elem.VR, "set", tuple(value), context)
    return None


def _items_key(sequence: DataElement) -> Hashable | None:
    """A sequence set in memory whose items hold only short text elements: its items' content, else None."""
    items = []
    for item in sequence.value:
        entries = []
        for tag in sorted(item._dict):
            elem = item._dict[tag]
            if (isinstance(elem, RawDataElement) or not _tag_is_remembered(elem.tag) or type(elem.value) is not str
                    or len(elem.value) > MAX_REMEMBERED_VALUE):
                return None
            entries.append((tag, elem.VR, elem.value))
        items.append((item.is_undefined_length_sequence_item, tuple(entries)))
    return tuple(items)


def written_element(elem: DataElement, implicit: bool, little: bool, charset: object) -> bytes:
    """`elem` as `write_data_element` writes it in this encoding and character set."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    write_data_element(buffer, elem, charset)
    return buffer.getvalue()
