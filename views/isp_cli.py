"""The ISP's set-up commands: ``create-staff`` and ``import customers|invoices``."""
import pathlib
import sys

import click

from billing import identity, imports, paylinks
from db import migrate
from db.models import Invoice, User


def _read_password():
    """The new password: asked twice, unechoed, at a terminal; else the first line of standard input.

    Piped in (``printf '%s\\n' "$PW" | ./portal create-staff …``), there is no terminal to hide the
    echo on, so none is tried (getpass would warn that the password may be echoed) and no confirmation
    is asked: the pipe cannot mistype.
    """
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline()
    if not line:
        raise click.ClickException("no password: type it at the prompt, or pipe it in on one line")
    return line.rstrip("\r\n")


def register_isp_cli(app):
    """Attach create-staff and import to ``flask``."""

    @app.cli.command("create-staff")
    @click.argument("email")
    @click.option("--role", type=click.Choice(["owner", "clerk"]), default="owner", show_default=True,
                  help="owner: settings, staff, API tokens, refunds; clerk: customers, invoices, payments, invites.")
    @click.option("--name", default="", help="The person's name, shown in the audit log.")
    def create_staff(email, role, name):
        """Create a staff login; the password is prompted for, never taken on the command line."""
        migrate.upgrade()
        email = email.strip().lower()
        if "@" not in email:
            raise click.ClickException("give the staff member's email address")
        if User.by_email(email) is not None:
            raise click.ClickException(f"{email} already has a login")
        password = _read_password()
        if len(password) < 10:
            raise click.ClickException("use a password of at least 10 characters")
        identity.create_user(email, password, role="staff", staff_role=role, name=name.strip()[:100], actor="cli")
        click.echo(f"{role} login created for {email}; log in at /login")

    @app.cli.command("paylink")
    @click.argument("invoice_number")
    @click.option("--days", type=click.IntRange(1, 365), default=paylinks.DEFAULT_DAYS, show_default=True,
                  help="How long the link works.")
    def paylink(invoice_number, days):
        """Print the signed pay-by-link URL for one invoice (for the ISP's own invoice emails)."""
        from flask import url_for

        inv = Invoice.get_or_none(Invoice.number == invoice_number)
        if inv is None or inv.void:
            raise click.ClickException(f"no payable invoice numbered {invoice_number}")
        token = paylinks.make(paylinks.keys(app.config), inv.id, days=days)
        with app.test_request_context():
            path = url_for("paylink.show", token=token)
        click.echo(app.config["PUBLIC_URL"].rstrip("/") + path)

    @app.cli.group("import")
    def import_group():
        """Import customers or invoices from a CSV file (see the README for the columns)."""

    def _run(kind, path, dry_run):
        data = pathlib.Path(path).read_bytes()
        fn = imports.import_customers if kind == "customers" else imports.import_invoices
        try:
            result = fn(data, dry_run=dry_run, actor="cli")
        except imports.ImportError_ as e:
            for err in e.errors[:200]:
                click.echo(f"{path}: {err}", err=True)
            if len(e.errors) > 200:
                click.echo(f"... and {len(e.errors) - 200} more", err=True)
            click.echo(f"nothing was imported: {len(e.errors)} error(s)", err=True)
            sys.exit(1)
        click.echo(result.message())
        if result.credit_applied_cents:
            click.echo(f"account credit applied to new invoices: {result.credit_applied_cents} cents")

    @import_group.command("customers")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--dry-run", is_flag=True, help="Check the file and say what would change; write nothing.")
    def import_customers(path, dry_run):
        """Upsert customers by account number from a CSV file."""
        _run("customers", path, dry_run)

    @import_group.command("invoices")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--dry-run", is_flag=True, help="Check the file and say what would change; write nothing.")
    def import_invoices(path, dry_run):
        """Upsert invoices by invoice number from a CSV file."""
        _run("invoices", path, dry_run)
