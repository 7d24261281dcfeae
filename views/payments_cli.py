"""Commands that work through the processor interface: ``flask --app app reconcile`` and ``refund``."""
import click

from billing import held, money, payments, refunds
from billing.processors import ProcessorError
from db import database
from db.models import Payment
from views.cli import run_once


REFUND_OUTCOMES = {refunds.DONE: "made, now recorded", refunds.FAILED: "not made, released",
                   refunds.REQUESTED: "the processor could not be reached; asked again next run"}


def register_payments_cli(app):
    """Attach reconcile and refund to ``flask``."""

    @app.cli.command("reconcile")
    @run_once("reconcile")
    @click.option("--minutes", default=5, show_default=True,
                  help="Only attempts left waiting at least this long (younger ones may still be in a browser).")
    def reconcile(minutes):
        """Ask the processor about payment attempts and refunds left pending and settle each exactly once (cron-safe)."""
        import datetime as dt

        proc = app.extensions["processor"]
        with database.connection_context():
            try:
                report = payments.reconcile(proc, older_than=dt.timedelta(minutes=minutes))
            except ProcessorError as e:
                raise click.ClickException(f"the processor could not be reached: {e}") from None
            stuck = refunds.resolve_stuck(proc)  # a processor it cannot reach leaves them for the next run
            closed = held.close_refunded()  # held payments whose refund that just recorded
        for ref, cents, outcome in stuck:
            click.echo(f"refund of {money.format_money(cents)} on {ref}: {REFUND_OUTCOMES[outcome]}")
        for ref in closed:
            click.echo(f"{ref}: held -> canceled (refunded)")
        moved = [(ref, before, after) for ref, before, after in report if before != after]
        for ref, before, after in moved:
            click.echo(f"{ref}: {before} -> {after}")
        click.echo(f"checked {len(report)} pending payment(s); settled {len(moved)}")

    @app.cli.command("refund")
    @click.argument("payment_ref")
    @click.argument("amount", required=False)
    @click.option("--reason", default="refund from the command line", show_default=True,
                  help="Why; kept with the refund and in the audit log.")
    def refund(payment_ref, amount, reason):
        """Refund PAYMENT_REF in full, or AMOUNT of it (e.g. 12.50); the ledger and invoices follow."""
        proc = app.extensions["processor"]
        if not refunds.can_refund(proc):
            raise click.ClickException(f"the {proc.name} processor cannot refund")
        with database.connection_context():
            payment = Payment.get_or_none(Payment.ref == payment_ref.strip().upper())
            if payment is None:
                raise click.ClickException(f"no payment {payment_ref}")
            left = refunds.refundable(payment)
            text = amount if amount is not None else money.cents_to_input(left)
            # Same command, same state: the same key, so a retried command cannot refund twice.
            key = f"refund-{payment.ref}-{payment.amount_cents - left}-{text}".replace(".", "_")[:64]
            try:
                done = refunds.refund(payment.id, text, reason, key, proc, actor="staff:cli")
            except payments.FormErrors as e:
                raise click.ClickException(" ".join(e.errors.values())) from None
            payment = Payment.get_by_id(payment.id)
            if done.status == refunds.FAILED:
                raise click.ClickException(f"the processor refused the refund: {done.error}")
            cur = payment.currency
            left = money.format_money(refunds.refundable(payment), cur)
            parts = money.format_money(done.amount_cents, cur)
            if done.fee_cents:
                parts = (f"{money.format_money(done.amount_cents + done.fee_cents, cur)}: {parts} of the payment "
                         f"+ {money.format_money(done.fee_cents, cur)} fee share")
            click.echo(f"refunded {parts} of {payment.ref} ({done.processor_ref}); status {payment.status}; "
                       f"{left} still refundable")
