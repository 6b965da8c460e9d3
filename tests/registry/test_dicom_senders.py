"""`ctstudy registry senders add | list | remove`: AE titles registered to centers, with clear errors."""

from __future__ import annotations

from typer.testing import CliRunner

from ctstudy.cli import app
from registry.db.engine import session_scope
from registry.db.models import AuditEvent
from registry.home import Home


def run(home: Home, *words: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "registry", "senders", *words])


def test_senders_add_list_remove_and_their_audit(home: Home, engine) -> None:
    assert run(home, "add", "MILANO_PACS", "--center", "it064").exit_code == 0
    added = run(home, "add", "BG_CT", "--center", "IT065", "--host", "10.0.0.7")
    assert added.exit_code == 0 and "from 10.0.0.7 only" in added.stdout
    listed = run(home, "list").stdout
    assert "MILANO_PACS" in listed and "IT064" in listed and "10.0.0.7" in listed
    assert run(home, "remove", "BG_CT").exit_code == 0
    assert "BG_CT" not in run(home, "list").stdout
    with session_scope(engine) as s:
        actions = [a for (a,) in s.query(AuditEvent.action).filter(AuditEvent.entity_type == "dicom_sender")
                   .order_by(AuditEvent.id)]
    assert actions == ["dicom_sender_added", "dicom_sender_added", "dicom_sender_removed"]


def test_senders_refuse_bad_titles_hosts_centers_and_duplicates(home: Home) -> None:
    assert run(home, "add", "MILANO_PACS", "--center", "IT064").exit_code == 0
    for words, says in ((["add", "MILANO_PACS", "--center", "IT065"], "already registered for center IT064"),
                        (["add", "A" * 17, "--center", "IT064"], "at most 16"),
                        (["add", "X", "--center", "IT064", "--host", "milano.example"], "is not an IP address"),
                        (["add", "Y", "--center", "IT 64"], "center code"),
                        (["remove", "NOBODY"], "not a registered sender")):
        result = run(home, *words)
        assert result.exit_code == 1, (words, result.output)
        assert says in " ".join(result.output.split()), (words, result.output)
