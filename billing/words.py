"""Words made in billing/ that customers see: invoice and payment statuses and payment types.

billing/ stays free of Flask and of any language: these are its English values, compared in code and kept
in the database. N_() only marks them, so that the catalogue holds them; templates translate each where it is
shown (``{{ _(v.status) }}``).
"""


def N_(text):
    """Mark text for the translation catalogue; it is translated where it is shown."""
    return text


SHOWN = (
    # billing/ledger.py: an invoice's status
    N_("Unpaid"), N_("Partially paid"), N_("Paid"), N_("Overdue"), N_("Void"), N_("Pending"),
    # billing/payments.py LABELS: a payment's status
    N_("Started"), N_("Waiting for payment details"), N_("Processing"), N_("Succeeded"), N_("Failed"),
    N_("Canceled"), N_("Refunded"), N_("Disputed"), N_("Reversed"), N_("Being checked"),
    # payment types (billing/payments.py and billing/methods.py)
    N_("Credit / Debit Card"), N_("ACH (bank account)"), N_("Bank account (ACH)"),
)
