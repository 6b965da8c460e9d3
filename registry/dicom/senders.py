"""Which DICOM nodes may send to the receiver: calling AE title -> center, optionally bound to one IP address.

An unknown caller (or a known AE title calling from another address) is refused at association, and
every refusal is an AuditEvent, so that a misconfigured PACS shows up in the audit log, not as silence.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Center, DicomSender
from registry.db.store import audit, center_by_code
from registry.identifiers import normalized_center
from registry.qc.header_validation import valid_center_code

AE_TITLE_MAX = 16  # DICOM PS3.5 VR AE: at most 16 characters, no backslash or control characters


@dataclass(frozen=True)
class SenderRow:
    ae_title: str
    center: str
    host: str | None


def normalized_ae_title(ae_title: str) -> str:
    """An AE title as compared: no surrounding blanks (DICOM pads with spaces); a clear error if invalid."""
    value = ae_title.strip()
    if not value:
        raise ValueError("an AE title cannot be empty")
    if len(value) > AE_TITLE_MAX:
        raise ValueError(f"AE title {value!r} is {len(value)} characters long; DICOM allows at most {AE_TITLE_MAX}")
    if "\\" in value or any(ord(ch) < 32 or ord(ch) > 126 for ch in value):
        raise ValueError(f"AE title {value!r} has a backslash or a character outside printable ASCII")
    return value


def add_sender(session: Session, ae_title: str, center: str, *, host: str | None, actor: str) -> SenderRow:
    """Register `ae_title` as a sender for `center` (created if new); ValueError if the title is taken."""
    title = normalized_ae_title(ae_title)
    code = normalized_center(center)
    if (why := valid_center_code(code)) is not None:
        raise ValueError(f"center code {center!r} {why}")
    if host is not None:
        try:
            host = str(ipaddress.ip_address(host.strip()))
        except ValueError:
            raise ValueError(f"--host {host!r} is not an IP address (give the address the PACS calls from)") from None
    existing = session.scalars(select(DicomSender).where(DicomSender.ae_title == title)).one_or_none()
    if existing is not None:
        raise ValueError(f"AE title {title} is already registered for center {existing.center.code}: "
                         "remove it first (`ctstudy registry senders remove`)")
    center_row = center_by_code(session, code)
    session.add(DicomSender(ae_title=title, center_id=center_row.id, host=host, created_by=actor))
    audit(session, actor=actor, action="dicom_sender_added", entity_type="dicom_sender", entity_id=title,
          after={"center": code, "host": host})
    return SenderRow(title, code, host)


def remove_sender(session: Session, ae_title: str, *, actor: str) -> SenderRow:
    """Unregister `ae_title`; LookupError if it is not registered."""
    title = normalized_ae_title(ae_title)
    row = session.scalars(select(DicomSender).where(DicomSender.ae_title == title)).one_or_none()
    if row is None:
        raise LookupError(f"AE title {title} is not a registered sender (see `ctstudy registry senders list`)")
    gone = SenderRow(row.ae_title, row.center.code, row.host)
    session.delete(row)
    audit(session, actor=actor, action="dicom_sender_removed", entity_type="dicom_sender", entity_id=title,
          before={"center": gone.center, "host": gone.host})
    return gone


def list_senders(session: Session) -> list[SenderRow]:
    rows = session.execute(select(DicomSender.ae_title, Center.code, DicomSender.host)
                           .join(Center, Center.id == DicomSender.center_id).order_by(DicomSender.ae_title))
    return [SenderRow(*r) for r in rows]


def authorized_center(session: Session, ae_title: str, address: str, *, called_ae: str, actor: str) -> str | None:
    """The center a calling AE title sends for, or None (refused; the refusal is audited with its reason)."""
    title = ae_title.strip()
    row = session.scalars(select(DicomSender).where(DicomSender.ae_title == title)).one_or_none()
    if row is not None and (row.host is None or _same_address(row.host, address)):
        return row.center.code
    reason = "unknown calling AE title" if row is None else f"calling from {address}, registered for {row.host}"
    audit(session, actor=actor, action="dicom_association_refused", entity_type="dicom_sender", entity_id=title[:80],
          after={"calling_ae": title, "called_ae": called_ae, "address": address, "reason": reason})
    return None


def _same_address(registered: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(registered) == ipaddress.ip_address(address)
    except ValueError:
        return False
