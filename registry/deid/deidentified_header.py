"""The de-identified header of a file, made from the one made for the previous file of its series.

`header_bytes(ds, key, pseudonym)` is `encoded_file(deidentified(ds, key, pseudonym))` byte for byte: the
profile (`registry.deid.profile.deidentified`) and the writer (`registry.deid.dicom_encoding`) are the same ones.
Building the profile's dataset and writing it cost about 2 ms a file in pydicom's Python, while the files
of one series differ in a handful of elements (SOP Instance UID, Instance Number, position, times). So the
first file of a context goes the whole way and is remembered in its parts (file meta, then each element's
bytes); a following file with the same context reuses every part whose source element is the same and
makes only the others, each as the whole way makes it:
- an element the profile keeps: the source element converted and written by pydicom, as `encoded_file`
  writes it (the conversion depends on the element and the character set only);
- a UID the profile maps (`mapped_uid`), or a description it cleans (`phi_text.cleaned_text`): the
  profile's value written as a UI / LO element; a SOP Instance UID also goes into the file meta, whose
  bytes are reused when the new value has the same padded length (else the whole way);
- the pseudonym the profile writes as PatientID and PatientName, when the file's patient is another than
  the remembered copy's: those two elements written as the whole way writes them, so that the files of
  every patient share one context.

The context is everything else the output depends on: the key, the encoding and transfer syntax, the SOP
Class (file meta), the character set, the elements whose VR depends on other elements (and those they
depend on), and which elements the profile reads are present. A file that differs in any of these, in
which a mapped UID or a cleaned description comes out empty, or which has one where the remembered copy
has none, goes the whole way (and is remembered in its turn).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pydicom import datadict
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from registry.deid.dicom_encoding import (
    encoded_file,
    encoded_parts,
    encoding_context,
    remember_element,
    remembered_element,
    written_element,
)
from registry.deid.phi_text import cleaned_text
from registry.deid.profile import DESCRIPTION_KEYWORDS, KEPT_TAGS, UID_KEYWORDS, deidentified, mapped_uid

SOP_INSTANCE_UID = 0x00080018
PSEUDONYM_TAGS = {0x00100010: "PatientName", 0x00100020: "PatientID"}  # the profile writes the pseudonym there
UID_TAGS = {datadict.tag_for_keyword(k): k for k in UID_KEYWORDS}
DESCRIPTION_TAGS = {datadict.tag_for_keyword(k): k for k in DESCRIPTION_KEYWORDS}
READ_TAGS = frozenset(int(t) for t in KEPT_TAGS | set(UID_TAGS) | set(DESCRIPTION_TAGS))  # what the profile reads
# Elements whose bytes in the copy depend on more than themselves: part of the context, never remade alone.
_CONTEXT_KEYWORDS = ("SpecificCharacterSet", "SOPClassUID", "PixelRepresentation", "BitsAllocated")
CONTEXT_TAGS = frozenset({datadict.tag_for_keyword(k) for k in _CONTEXT_KEYWORDS}
                         | {int(t) for t in KEPT_TAGS if " or " in datadict.dictionary_VR(t)})
MAX_TEMPLATES = 64  # contexts remembered per process (one per series being read, a few at a time)


@dataclass
class _Template:
    sources: dict[int, Hashable]  # tag -> the source element as stored, for the elements the profile reads
    prefix: bytes  # preamble and file meta
    sop_at: int  # where the MediaStorageSOPInstanceUID value lies in `prefix` (-1: not reusable)
    sop_length: int
    parts: list[tuple[int, bytes]]  # each element of the copy, in file order
    implicit: bool  # the copy's encoding
    little: bool
    context: Hashable  # `dicom_encoding.encoding_context` of the copy
    pseudonym: str  # the one written in `parts`

    def __post_init__(self) -> None:
        self.by_tag = dict(self.parts)
        self.index = {tag: at for at, (tag, _made) in enumerate(self.parts)}
        self.made = [made for _tag, made in self.parts]
        self.other_pseudonym: tuple[str, dict[int, bytes]] | None = None  # the last other one's elements


_templates: dict[Hashable, _Template] = {}


def header_bytes(ds: Dataset, key: bytes, pseudonym: str) -> bytes:
    """`encoded_file(deidentified(ds, key, pseudonym))`, reusing the previous file's where they agree."""
    # Plain ints as keys: comparing pydicom's tags runs Python code, ints compare in C.
    sources = {number: _source(elem) for tag, elem in ds._dict.items() if (number := int(tag)) in READ_TAGS}
    context = _context(ds, key, sources)
    template = _templates.get(context) if context is not None else None
    if template is not None:
        made = _from_template(template, ds, key, pseudonym, sources)
        if made is not None:
            return made
    out = deidentified(ds, key, pseudonym)
    parts = encoded_parts(out)
    if parts is None:
        return encoded_file(out)
    prefix, elements = parts
    if context is not None:
        if len(_templates) >= MAX_TEMPLATES:
            _templates.clear()
        sop = str(out.get("SOPInstanceUID") or "")
        sop_at, sop_length = _value_at(prefix, sop)
        syntax = out.file_meta.TransferSyntaxUID
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
        _templates[context] = _Template(sources, prefix, sop_at, sop_length,
                                        [(int(tag), made) for tag, made in elements], implicit, little,
                                        encoding_context(out, implicit, little), pseudonym)
    return prefix + b"".join(made for _tag, made in elements)


def _source(elem: object) -> Hashable | None:
    """The element as stored in the file (None for one already converted: always made again)."""
    if isinstance(elem, RawDataElement):
        return (elem.VR, elem.length, elem.value, elem.is_implicit_VR, elem.is_little_endian)
    return None


_META_CONTEXT_TAGS = (0x00020002, 0x00020010)  # Media Storage SOP Class UID, Transfer Syntax UID


def _context(ds: Dataset, key: bytes, sources: dict[int, Hashable]) -> Hashable | None:
    meta = getattr(ds, "file_meta", None)
    meta_part = None
    if meta is not None:
        # Looked up by plain int, in tag order: sorting pydicom's tags would compare them in Python.
        meta_part = tuple((tag, _source(elem) or str(elem.value)) for tag in _META_CONTEXT_TAGS
                          if (elem := meta._dict.get(tag)) is not None)
    fixed = []
    for tag in CONTEXT_TAGS:
        if tag in sources:
            if sources[tag] is None:
                return None
            fixed.append((tag, sources[tag]))
    # The file meta holds the mapped SOP Instance UID: files whose mapped UIDs differ in padded length
    # (a 2.25 number of 37 digits or fewer) have file meta of another length, made from another template.
    sop = sources.get(SOP_INSTANCE_UID)
    sop_length = ((len(remembered_mapped_uid(key, sop[2].decode("ascii", "replace"))) + 1) // 2
                  if sop and sop[2] else None)
    return (key, ds.original_encoding, meta_part, tuple(sorted(fixed)), frozenset(sources), sop_length)


def _value_at(prefix: bytes, uid: str) -> tuple[int, int]:
    """Where the MediaStorageSOPInstanceUID value `uid` lies in the file meta bytes, and its padded length."""
    if not uid or not uid.isascii():
        return -1, 0
    value = uid.encode("ascii") + (b"\0" if len(uid) % 2 else b"")
    element = b"\x02\x00\x03\x00UI" + len(value).to_bytes(2, "little") + value
    at = prefix.find(element)
    if at < 0 or prefix.count(element) != 1:
        return -1, 0
    return at + 8, len(value)


def _from_template(template: _Template, ds: Dataset, key: bytes, pseudonym: str, sources: dict[int, Hashable]
                   ) -> bytes | None:
    changed = [tag for tag, source in sources.items() if source is None or template.sources.get(tag) != source]
    implicit, little = template.implicit, template.little
    old = template.by_tag
    prefix = template.prefix
    remade: dict[int, bytes] = {} if pseudonym == template.pseudonym else _pseudonym_elements(template, ds, pseudonym)
    probe: Dataset | None = None  # what the copy holds of the other changed elements, see `_probe`
    for tag in changed:
        if tag in KEPT_TAGS:
            if tag in CONTEXT_TAGS:
                return None
            elem = ds.get_item(tag)
            remembered_key, made = remembered_element(elem, template.context)
            if made is not None:
                remade[tag] = made
                continue
            probe = probe if probe is not None else _probe(ds)
            probe[tag] = elem
            made = written_element(probe[tag], implicit, little, probe.get("SpecificCharacterSet", default_encoding))
            if remembered_key is not None:
                remember_element(remembered_key, made)
            remade[tag] = made
        elif tag in UID_TAGS:
            value = ds.get(UID_TAGS[tag])
            if not value:
                return None
            mapped = remembered_mapped_uid(key, str(value))
            encoded = mapped.encode("ascii") + (b"\0" if len(mapped) % 2 else b"")
            if tag == SOP_INSTANCE_UID:
                if template.sop_at < 0 or len(encoded) != template.sop_length:
                    return None
                prefix = prefix[: template.sop_at] + encoded + prefix[template.sop_at + len(encoded):]
            before = old.get(tag)
            if before is not None and len(before) == _UI_HEADER + len(encoded):
                # A UI element is its 8-byte header (tag, VR or not, length) and the value padded with a NUL:
                # the same length, the same header.
                remade[tag] = before[:_UI_HEADER] + encoded
            else:
                probe = probe if probe is not None else _probe(ds)
                setattr(probe, UID_TAGS[tag], mapped)
                remade[tag] = written_element(probe[tag], implicit, little,
                                              probe.get("SpecificCharacterSet", default_encoding))
        else:
            value = ds.get(DESCRIPTION_TAGS[tag])
            cleaned = cleaned_text(str(value))[0] if value else None
            if not cleaned:
                return None
            probe = probe if probe is not None else _probe(ds)
            setattr(probe, DESCRIPTION_TAGS[tag], cleaned)
            made = written_element(probe[tag], implicit, little, probe.get("SpecificCharacterSet", default_encoding))
            remade[tag] = made
    if not remade.keys() <= old.keys():
        # An element the template's copy lacks (a description its file had cleaned away, a UID it had empty).
        return None
    made_parts = template.made.copy()
    for tag, made in remade.items():
        made_parts[template.index[tag]] = made
    return prefix + b"".join(made_parts)


def _pseudonym_elements(template: _Template, ds: Dataset, pseudonym: str) -> dict[int, bytes]:
    """PatientName and PatientID of the copy holding `pseudonym`, as `encoded_file` writes them in the profile's
    dataset (set in memory, in the copy's encoding and character set); the last pseudonym's are remembered."""
    last = template.other_pseudonym
    if last is not None and last[0] == pseudonym:
        return dict(last[1])
    probe = _probe(ds)
    charset = probe.get("SpecificCharacterSet", default_encoding)
    made = {}
    for tag, keyword in PSEUDONYM_TAGS.items():
        setattr(probe, keyword, pseudonym)
        made[tag] = written_element(probe[tag], template.implicit, template.little, charset)
    template.other_pseudonym = (pseudonym, made)
    return dict(made)


_UI_HEADER = 8
_mapped_uids: dict[tuple[bytes, str], str] = {}


def remembered_mapped_uid(key: bytes, uid: str) -> str:
    """`mapped_uid(key, uid)`, remembered: the context and the copy both need a file's mapped SOP UID, and
    ingest names the file's archive folder and copy by the mapped Study, Series and SOP Instance UIDs (an
    HMAC each, the same for every file of a series)."""
    mapped = _mapped_uids.get((key, uid))
    if mapped is None:
        if len(_mapped_uids) >= 4096:
            _mapped_uids.clear()
        mapped = _mapped_uids[(key, uid)] = mapped_uid(key, uid)
    return mapped


def _probe(ds: Dataset) -> Dataset:
    """A dataset with `ds`'s character set, in which changed elements are converted and written as
    `encoded_file` converts and writes them in the profile's dataset (which keeps that character set)."""
    probe = Dataset()
    if 0x00080005 in ds._dict:
        probe[0x00080005] = ds.get_item(0x00080005)
    return probe
