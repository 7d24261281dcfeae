"""Autopay's commands for cron and the ISP's staff: ``flask --app app autopay`` and ``autopay-policy``."""
import contextlib
import datetime as dt

import click

from billing import autopay
from db.models import Isp
from views.cli import cron_lock


def register_autopay_cli(app):
    """Attach the autopay commands to ``flask``."""

    @app.cli.command("autopay")
    @click.option("--dry-run", is_flag=True, help="Show what would be charged; change nothing.")
    @click.option("--date", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Run as of this business date (default: today).")
    @click.option("--quiet", is_flag=True, help="Print only failures and the summary.")
    def autopay_run(dry_run, on, quiet):
        """Charge due invoices of autopay customers with their saved method (daily, from cron)."""
        day = on.date() if isinstance(on, dt.datetime) else None

        def echo(line):
            if not quiet or line.startswith(("  failed", "  waiting")):
                click.echo(line)

        # A dry run writes nothing, so it may run beside a real one; a real run holds the job's lock.
        with contextlib.nullcontext() if dry_run else cron_lock("autopay"):
            summary = autopay.run(app.extensions["processor"], on=day, dry_run=dry_run, echo=echo)
        isp = Isp.current()
        click.echo(f"autopay done in {summary.seconds:.1f}s: {summary.line(isp.currency if isp else 'USD')}")
        if summary.skip_reasons:
            click.echo("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(summary.skip_reasons.items())))
        if not dry_run:
            click.echo(f"queued {summary.upcoming_notices} upcoming-charge and {summary.expiry_notices} "
                       "expiring-card email(s); `send-mail` sends them")

    @app.cli.command("autopay-policy")
    @click.option("--days-before", type=int, help="Charge this many days before the due date (0: on it).")
    @click.option("--attempts", type=int, help="Attempts in all for a failed charge (default 3).")
    @click.option("--retry-days", type=int, help="Days between attempts (default 3).")
    @click.option("--upcoming-days", type=int, help="Email this many days before a charge (default 3; 0: never).")
    @click.option("--expiry-days", type=int, help="Email this many days before a saved card expires (default 30).")
    def autopay_policy(days_before, attempts, retry_days, upcoming_days, expiry_days):
        """Show, or change, when autopay charges and how it retries."""
        try:
            pol = autopay.set_policy(days_before=days_before, max_attempts=attempts, retry_days=retry_days,
                                     upcoming_notice_days=upcoming_days, expiry_notice_days=expiry_days) \
                if any(v is not None for v in (days_before, attempts, retry_days, upcoming_days, expiry_days)) \
                else autopay.policy()
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        click.echo(f"charge: {autopay.when_text(pol).replace('its', 'each invoice')}")
        click.echo(f"attempts: {pol.max_attempts}, {pol.retry_days} day(s) apart")
        click.echo(f"upcoming-charge email: {pol.upcoming_notice_days} day(s) before; "
                   f"expiring-card email: {pol.expiry_notice_days} day(s) before")
