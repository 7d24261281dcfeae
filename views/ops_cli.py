"""Operations commands: moving the portal's data to PostgreSQL (``flask --app app copy-to-postgres``)."""
import click

from db import database, is_sqlite
from db.backup import BackupError, pg_dump_command, sqlite_backup
from db.copy import CopyError, copy_to_postgres
from views.cli import run_once


def register_ops_cli(app):
    """Attach the operations commands to ``flask``."""

    @app.cli.command("backup")
    @run_once("backup")
    @click.argument("path")
    def backup(path):
        """Write a consistent copy of the database to PATH while the portal serves (SQLite), or say what to run."""
        if not is_sqlite():
            click.echo("on PostgreSQL, back up with pg_dump (it is consistent while the portal serves):")
            click.echo("  " + pg_dump_command(path))
            raise SystemExit(2)
        try:
            done = sqlite_backup(database.obj.database, path)
        except BackupError as e:
            raise click.ClickException(str(e)) from None
        size = done.stat().st_size
        click.echo(f"backed up to {done} ({size / 1e6:.1f} MB); integrity check ok")

    @app.cli.command("copy-to-postgres")
    @click.argument("target_url")
    @click.option("--replace", is_flag=True, help="Overwrite a PostgreSQL database that holds other portal data.")
    def copy_to_postgres_command(target_url, replace):
        """Copy this portal's SQLite database into the PostgreSQL database at TARGET_URL, and check the copy."""
        if not is_sqlite():
            raise click.ClickException("DATABASE_URL must point at the SQLite database to copy from")
        if not target_url.startswith(("postgresql://", "postgres://")):
            raise click.ClickException("TARGET_URL must be postgresql://user@host:5432/dbname")
        source = database.obj.database
        database.close()
        try:
            report = copy_to_postgres(source, target_url, replace=replace, log=click.echo)
        except CopyError as e:
            raise click.ClickException(str(e)) from None
        finally:
            from db import open_database

            open_database(app.config["DATABASE_URL"])
        for label, a, b in report.checks:
            click.echo(f"check {label}: SQLite {a}, PostgreSQL {b} {'ok' if a == b else 'MISMATCH'}")
        total = sum(report.rows.values())
        if report.already:
            click.echo(f"the PostgreSQL database already holds this data ({total} rows, checks equal); "
                       "nothing was written")
        else:
            click.echo(f"copied {total} row(s) in {len(report.rows)} table(s); row counts and ledger totals match")
        click.echo("next: set DATABASE_URL to the PostgreSQL URL and restart the portal")
