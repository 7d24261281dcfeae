"""Words made in billing/ that customers see: statuses, payment types, field errors and statement lines.

billing/ stays free of Flask and of any language: these are its English values, compared in code, kept in the
database and checked by the tests. ``N_()`` marks them, so that the catalogue holds them, and returns a :class:`Text`
(``N_("The minimum payment is %(amount)s.", amount="$5.00")``): a str, the English sentence, which also
remembers its catalogue id and parameters, so that a page (the Jinja ``finalize`` hook in views/i18n.py) or
an email (billing/language.py) can say it in the customer's language. Where a value was stored or passed
through plain str, templates translate it by its English words (``{{ _(v.status) }}``).
"""


class Text(str):
    """English text that keeps its catalogue id and parameters, to be said again in another language."""

    __slots__ = ("msgid", "params")

    def __new__(cls, msgid, params=None):
        params = dict(params or {})
        self = super().__new__(cls, msgid % params if params else msgid)
        self.msgid = msgid
        self.params = params
        return self

    def __reduce__(self):
        return (Text, (self.msgid, self.params))


def N_(text, **params):
    """Mark text for the translation catalogue: a :class:`Text` (filled in with ``params``, if any)."""
    return Text(text, params)


def joined(parts, sep=" "):
    """Sentences said one after another, as one :class:`Text` (each part said in its language when shown)."""
    parts = [p if isinstance(p, Text) else Text(p.replace("%", "%%")) for p in parts]
    return Text(sep.join(f"%(p{i})s" for i in range(len(parts))), {f"p{i}": p for i, p in enumerate(parts)})


def translate(value, gettext):
    """``value`` in the language of ``gettext`` (a catalogue lookup): a :class:`Text` with its :class:`Text`
    parameters translated too (plain parameters, such as amounts and numbers, as they are); a plain string
    through the catalogue (unchanged when the catalogue does not hold it); anything else as it is."""
    if isinstance(value, Text):
        if not value.params:
            return gettext(value.msgid)
        return gettext(value.msgid) % {k: translate(v, gettext) if isinstance(v, Text) else v
                                       for k, v in value.params.items()}
    if isinstance(value, str) and value:
        return gettext(value)
    return value


SHOWN = (
    # billing/ledger.py: an invoice's status
    N_("Unpaid"), N_("Partially paid"), N_("Paid"), N_("Overdue"), N_("Void"), N_("Pending"),
    # billing/payments.py LABELS: a payment's status
    N_("Started"), N_("Waiting for payment details"), N_("Processing"), N_("Succeeded"), N_("Failed"),
    N_("Canceled"), N_("Refunded"), N_("Disputed"), N_("Reversed"), N_("Being checked"),
    N_("Waiting for bank account verification"),
    # payment types (billing/payments.py and billing/methods.py)
    N_("Credit / Debit Card"), N_("ACH (bank account)"), N_("Bank account (ACH)"),
)
