"""Command-line tasks for the ISP's staff and cron: ``flask --app app COMMAND``."""
import contextlib
import functools

import click

from billing import demo as demo_data
from billing import mail
from db import migrate
from db.jobs import EXIT_BUSY, JobBusy, job_lock
from db.models import Customer


@contextlib.contextmanager
def cron_lock(name):
    """Hold job ``name``'s lock, or end the command at once: a second run, here or on another host, does nothing.

    The busy run says so on stderr and exits with status 75 (EX_TEMPFAIL), so cron's mail shows it
    without it looking like a failure of the work itself.
    """
    try:
        lock = job_lock(name)
        lock.__enter__()
    except JobBusy as e:
        click.echo(f"{name}: {e}", err=True)
        raise SystemExit(EXIT_BUSY) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def run_once(name):
    """Decorate a cron command so that it runs inside ``cron_lock(name)``."""

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            with cron_lock(name):
                return command(*args, **kwargs)

        return wrapper

    return decorate


def register_cli(app):
    """Attach the portal's commands to ``flask``."""
    from views.isp_cli import register_isp_cli

    register_isp_cli(app)
    from views.autopay_cli import register_autopay_cli

    register_autopay_cli(app)
    from views.payments_cli import register_payments_cli

    register_payments_cli(app)
    from views.ops_cli import register_ops_cli

    register_ops_cli(app)

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """Create the database or bring it up to date, keeping every row."""
        ran = migrate.upgrade(log=click.echo)
        click.echo(f"database is up to date ({len(ran)} migration(s) applied)")
        _reseal_two_factor()

    def _reseal_two_factor():
        from billing import twofactor

        done, unreadable = twofactor.reseal_all()
        if done:
            click.echo(f"sealed {done} two-factor secret(s) with the current SECRET_KEY")
        if unreadable:
            click.echo(f"{unreadable} two-factor secret(s) open with no configured SECRET_KEY; those logins "
                       "can use a recovery code, then set two-factor up again", err=True)

    @app.cli.command("reseal-2fa")
    def reseal_2fa():
        """Seal two-factor secrets with the current SECRET_KEY (legacy plain ones, and any under a fallback key)."""
        _reseal_two_factor()
        click.echo("two-factor secrets are sealed with the current SECRET_KEY")

    @app.cli.command("demo")
    @click.option("--if-empty", is_flag=True, help="Only load the demo when there are no customers yet.")
    def demo(if_empty):
        """Load the demo ISP, customers and invoices (safe to run again)."""
        migrate.upgrade()
        if if_empty and Customer.select().exists():
            click.echo("database already has customers; demo data not loaded")
            return
        # The demo's history is paid through the built-in sandbox whatever processor is configured: demo
        # cards must never reach a real processor (and Stripe has no way to take a card number server-side).
        proc = demo_data.sandbox_processor(app.config)
        if proc.name != app.extensions["processor"].name:
            click.echo(f"demo payments go through the sandbox; {app.extensions['processor'].name} is not charged")
        try:
            created = demo_data.load(proc)
        except demo_data.RealCustomers as refused:
            click.echo(f"{refused}: demo logins share a password printed in the README, and its payments would "
                       "appear in your lists and exports. Load the demo into a database of its own "
                       "(DATABASE_URL=sqlite:///demo.sqlite3).", err=True)
            raise SystemExit(1)
        click.echo("demo data loaded" if created else "demo data already present")
        click.echo(f"demo login: {demo_data.DEMO_EMAIL} / {demo_data.DEMO_PASSWORD}")

    @app.cli.command("remove-demo")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def remove_demo(yes):
        """Delete the demo ISP's customers, logins, payments and audit rows (before serving real customers)."""
        if not demo_data.logins_present():
            click.echo("no demo data in this database")
            return
        if not yes:
            click.confirm(f"Delete the demo customers ({demo_data.DEMO_EMAIL}, {demo_data.OTHER_EMAIL}) and "
                          "everything of theirs?", abort=True)
        removed = demo_data.remove()
        click.echo("removed: " + ", ".join(f"{n} {t}" for t, n in sorted(removed.items())))
        click.echo("the demo logins are gone; `make serve` will start")

    @app.cli.command("purge")
    @run_once("purge")
    def purge():
        """Drop ended sessions, idle throttle counters, old links and login audit rows past LOGIN_AUDIT_DAYS
        (for cron, daily); the payment trail is never touched."""
        from billing import retention

        done = retention.purge(login_days=app.config["LOGIN_AUDIT_DAYS"])
        click.echo("purged: " + ", ".join(f"{n} {kind}" for kind, n in done.items()))

    @app.cli.command("send-mail")
    @run_once("send-mail")
    def send_mail():
        """Send queued email (for cron); temporary failures are retried, permanent refusals are marked failed."""
        sent, failed = mail.send_pending(app.config["SMTP_URL"], app.config["MAIL_FROM"], out=click.echo)
        click.echo(f"sent {sent} email(s); {failed} failed (temporary failures are retried later; "
                   "a permanent refusal is marked failed with its reason)")
        if failed:
            raise SystemExit(1)
