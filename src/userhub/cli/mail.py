"""``flask --app userhub mail …``: see the outbox, send what is due now, retry what failed."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy.engine import make_url

from ..config.values import shown
from ..models import utc_iso
from ..services import outbox
from .commands import database_command


@click.group("mail")
def mail() -> None:
    """The outbox of account mail (userhub serve sends it in the background)."""


@mail.command("status")
@database_command
def status() -> None:
    """How many mails are waiting, failed and sent, and where mail goes."""
    counts = outbox.counts()
    url = current_app.config.get("USERHUB_MAIL_URL")
    click.echo(f"pending: {counts.pending}  failed: {counts.failed}  sent: {counts.sent}")
    click.echo(
        f"sending to: {shown(make_url(url)) if url else 'nowhere: USERHUB_MAIL_URL is not set'}"
    )


@mail.command("list")
@click.option("--status", "state", type=click.Choice([outbox.PENDING, outbox.FAILED, outbox.SENT]))
@click.option("--limit", default=50, show_default=True, help="The newest this many.")
@database_command
def list_mail(state: str | None, limit: int) -> None:
    """The newest mails: id, status, attempts, kind, recipient, and the last error."""
    for row in outbox.listed(state, limit):
        when = utc_iso(row.sent_at or row.next_attempt_at)
        line = f"{row.id}\t{row.status}\t{row.attempts}\t{row.kind}\t{row.recipient}\t{when}"
        click.echo(line + (f"\t{row.last_error}" if row.last_error else ""))


@mail.command("send")
@database_command
def send() -> None:
    """Send every mail that is due now, in this process, and say how many were claimed."""
    sender = outbox.Sender.configured(current_app.config)
    if sender is None:
        raise click.ClickException("USERHUB_MAIL_URL is not set: there is nowhere to send to.")
    total = sender.send_due()
    counts = outbox.counts()
    click.echo(f"claimed {total}; now pending: {counts.pending}, failed: {counts.failed}")


@mail.command("retry")
@click.argument("ids", nargs=-1, type=int)
@database_command
def retry(ids: tuple[int, ...]) -> None:
    """Make the failed mails IDS (or every failed one) and the waiting ones due now; a running
    server sends them within seconds (or run `mail send`)."""
    click.echo(f"{outbox.retry(list(ids))} mail(s) due now")
