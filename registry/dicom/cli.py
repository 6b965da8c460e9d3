"""`ctstudy registry receive | pull | senders ...`: the DICOM network routes into the registry.

pynetdicom and ingest are imported inside the commands, so that the registry's other commands
start without them.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from registry.cli_support import login_name, open_registry
from registry.cli_tables import print_table
from registry.db.engine import session_scope
from registry.db.rows import Rows

console = Console()
senders_app = typer.Typer(help="DICOM senders: the calling AE titles the receiver accepts, each for one center.",
                          no_args_is_help=True)


@senders_app.command("add")
def senders_add(
    ctx: typer.Context,
    ae_title: str = typer.Argument(..., help="The calling AE title the center's PACS sends with."),
    center: str = typer.Option(..., "--center", help="Center code its files belong to."),
    host: str | None = typer.Option(None, "--host", help="Accept it only from this IP address."),
) -> None:
    """Register a center's PACS as a sender (its files are ingested under that center)."""
    from registry.dicom.senders import add_sender

    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        row = add_sender(session, ae_title, center, host=host, actor=login_name())
    console.print(f"Sender {row.ae_title} registered for center {row.center}"
                  + (f", from {row.host} only" if row.host else ""))


@senders_app.command("list")
def senders_list(ctx: typer.Context) -> None:
    """The registered senders."""
    from registry.dicom.senders import list_senders

    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        rows = list_senders(session)
    print_table(console, Rows(("AE title", "Center", "Host"), [(r.ae_title, r.center, r.host or "any") for r in rows]),
                "DICOM senders", labels=False)


@senders_app.command("remove")
def senders_remove(ctx: typer.Context, ae_title: str = typer.Argument(...)) -> None:
    """Unregister a sender: its next association is refused."""
    from registry.dicom.senders import remove_sender

    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        row = remove_sender(session, ae_title, actor=login_name())
    console.print(f"Sender {row.ae_title} (center {row.center}) removed")


def receive(
    ctx: typer.Context,
    port: int = typer.Option(11112, "--port", min=1, max=65535, help="TCP port to listen on."),
    ae_title: str = typer.Option("CTSTUDY", "--ae-title", help="Our AE title (senders call it)."),
    bind: str = typer.Option("0.0.0.0", "--bind", help="Address to listen on."),
    quiet: float = typer.Option(30.0, "--quiet-seconds", min=0.1,
                                help="Ingest an open association's files after this long without a C-STORE."),
) -> None:
    """Run the DICOM storage SCP until SIGTERM or Ctrl-C: registered senders' files are ingested per association."""
    from registry.dicom.receiver import Receiver

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    stop = threading.Event()

    def done(batch, report, error) -> None:  # noqa: ANN001 - spool.Batch, IngestReport, exception
        if error is not None:
            console.print(f"[red]batch {batch.path.name} ({batch.center}) not ingested:[/red] "
                          f"{escape(type(error).__name__)}; kept in the spool, retried at the next start")
            return
        rejected = ", ".join(f"{k} {v}" for k, v in report.rejected_by_reason.items()) or "none"
        console.print(f"{batch.center}: ingest run {report.run_id}: {report.files_seen} files, "
                      f"{report.new_instances} new, {report.already_present} already present, "
                      f"{report.series_new} new series, rejected: {rejected}", highlight=False)

    with open_registry(ctx) as (home, engine):
        receiver = Receiver(engine, home, ae_title=ae_title, port=port, bind=bind, quiet_seconds=quiet,
                            on_batch_done=done)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        receiver.start()
        console.print(f"Receiving as {receiver.ae_title} on {bind}:{port} (SIGTERM or Ctrl-C stops)", highlight=False)
        while not stop.wait(1.0):
            pass
        console.print("Stopping: ending open associations and ingesting what was received...")
        receiver.stop()
        console.print("Stopped.")


def pull(
    ctx: typer.Context,
    pacs: str = typer.Option(..., "--pacs", help="The PACS as AET@HOST:PORT."),
    ae_title: str = typer.Option(..., "--ae-title", help="Our AE title (the PACS must know it)."),
    port: int = typer.Option(11113, "--port", min=1, max=65535,
                             help="Port of our temporary storage SCP for C-MOVE (the PACS sends there)."),
    center: str = typer.Option(..., "--center", help="Center code the fetched series belong to."),
    patient_id: str | None = typer.Option(None, "--patient-id"),
    accession: str | None = typer.Option(None, "--accession"),
    study_uid: str | None = typer.Option(None, "--study-uid"),
    list_file: Path | None = typer.Option(None, "--list", exists=True, dir_okay=False,
                                          help="CSV with one header (patient_id, accession or study_uid) "
                                               "and one value per row."),
    method: str = typer.Option("move", "--method", help="move (to our temporary SCP) or get."),
    bind: str = typer.Option("0.0.0.0", "--bind", help="Address our temporary C-MOVE SCP listens on."),
) -> None:
    """Find a patient's, accession's or study's series on a PACS and fetch those the registry lacks."""
    from registry.dicom.pull import parse_pacs, queries_from_list
    from registry.dicom.pull import pull as run_pull
    from registry.qc.header_validation import valid_center_code

    given = [(k, v) for k, v in (("patient_id", patient_id), ("accession", accession), ("study_uid", study_uid))
             if v is not None]
    if len(given) + (list_file is not None) != 1:
        raise typer.BadParameter("give exactly one of --patient-id, --accession, --study-uid or --list")
    with open_registry(ctx) as (home, engine):
        if (why := valid_center_code(center.strip().upper())) is not None:
            raise ValueError(f"--center {center!r} {why}")
        queries = queries_from_list(list_file) if list_file is not None else given
        report = run_pull(engine, home, pacs=parse_pacs(pacs), ae_title=ae_title, port=port, center=center,
                          queries=queries, method=method, actor=login_name(), bind=bind)
        rows = [("queries", report.queries), ("studies found", report.studies_found),
                ("instances found", report.instances_found), ("already present", report.already_present),
                ("fetched", report.fetched)]
        if report.ingest is not None:
            ing = report.ingest
            rows += [("new instances", ing.new_instances), ("new series", ing.series_new),
                     ("rejected", len(ing.rejected)), ("conflicts", len(ing.conflicts))]
        print_table(console, Rows(("What", "Count"), rows), f"Pull from {pacs}", labels=False)
        for failure in report.retrieve_failures:
            console.print(f"[yellow]not fetched:[/yellow] {escape(failure)}")
        if report.retrieve_failures:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the network commands to `ctstudy registry`."""
    app.command("receive")(receive)
    app.command("pull")(pull)
    app.add_typer(senders_app, name="senders")
