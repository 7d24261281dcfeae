"""Tables of the portal. Queries live here as class methods; rules do not.

Money is always integer cents (``*_cents``) with the currency stored beside
it. The schema itself is created by the numbered migrations in
``db/migrations``; these classes must match it (a test checks that).
"""
import datetime as dt

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
    fn,
)

from db import database


def utcnow():
    """Current UTC time, naive, as stored in the database."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def sum_cents(field):
    """SUM of a cents column as an integer, 0 when there are no rows (PostgreSQL would give numeric)."""
    return fn.COALESCE(fn.SUM(field), 0).cast("BIGINT")


_ISP_VERSION_SQL = "SELECT id, settings_version FROM isp ORDER BY id LIMIT 1"


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Isp(BaseModel):
    """The one ISP this install serves, and its portal settings."""

    name = CharField()
    currency = CharField(default="USD")
    support_phone = CharField(default="")
    support_email = CharField(default="")
    help_url = CharField(default="")
    chat_url = CharField(default="")
    min_payment_cents = BigIntegerField(default=100)
    max_prepay_cents = BigIntegerField(default=0)
    # Portal settings (migration 0006), edited on the staff Settings page.
    logo_type = CharField(default="")
    logo_data = TextField(default="")  # base64 of a small checked PNG/JPEG/GIF/WebP
    accent_color = CharField(default="")
    show_invoices = BooleanField(default=True)
    show_payments = BooleanField(default=True)
    show_statement = BooleanField(default=True)
    accept_card = BooleanField(default=True)
    accept_ach = BooleanField(default=True)
    max_payment_cents = BigIntegerField(default=0)  # 0: no limit beyond the balance and prepayment
    allow_prepay = BooleanField(default=True)
    invite_subject = CharField(default="")
    invite_text = TextField(default="")
    address = TextField(default="")  # postal address on documents (migration 0071)
    # Convenience fees (migration 0072, billing/fees.py): basis points and cents; 0 and 0 is off.
    card_fee_bp = IntegerField(default=0)
    card_fee_fixed_cents = BigIntegerField(default=0)
    ach_fee_bp = IntegerField(default=0)
    ach_fee_fixed_cents = BigIntegerField(default=0)
    default_language = CharField(default="en")  # for visitors whose browser asks for no language offered (0050)
    offer_spanish = BooleanField(default=True)
    require_staff_2fa = BooleanField(default=False)  # staff must log in with a second factor (0073)
    settings_version = IntegerField(default=0)  # bumped by every write, see current() (0180)

    @classmethod
    def current(cls):
        """The ISP row, or None before set-up.

        The row (with its logo) is kept per process, per database handle, and re-read only when its
        ``settings_version`` changed: one small parameterless query a call instead of loading the whole row.
        Every write through ``update``/``save`` bumps the version, so a change made by any worker or host is
        seen by the next call everywhere. A row read inside a transaction is not kept: the transaction may
        roll back, and another writer could then reach the same version with different settings.
        """
        db = database.obj
        row = db.execute_sql(_ISP_VERSION_SQL).fetchone()
        if row is None:
            return None
        key = (row[0], row[1])
        cached = getattr(db, "_isp_cache", None)
        if cached is None or cached[0] != key:
            isp = cls.select().where(cls.id == row[0]).first()
            if isp is None:
                return None
            if not db.in_transaction() and isp.settings_version == row[1]:
                db._isp_cache = (key, dict(isp.__data__))
            return isp
        isp = cls(**cached[1])  # a copy: a caller may change its own
        isp._dirty.clear()
        return isp

    @classmethod
    def update(cls, __data=None, **update):
        """An UPDATE that also bumps ``settings_version``, so every worker's cached row is refreshed."""
        query = super().update(__data, **update)
        query._update[cls.settings_version] = cls.settings_version + 1
        return query

    def save(self, *args, **kwargs):
        """Save, then bump ``settings_version`` in SQL (not from this copy's number, which may be stale)."""
        result = super().save(*args, **kwargs)
        type(self).update().where(type(self).id == self.id).execute()
        return result


class Customer(BaseModel):
    account_number = CharField(unique=True)
    name = CharField()
    email = CharField(default="")
    phone = CharField(default="")
    street = CharField(default="")
    city = CharField(default="")
    state = CharField(default="")
    zip = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    language = CharField(null=True)  # the portal language the customer chose; None: the browser's (0050)


class User(BaseModel):
    """A login identity: a customer's (role 'customer') or the ISP staff's."""

    email = CharField(unique=True)
    password_hash = CharField()
    role = CharField(default="customer")
    customer = ForeignKeyField(Customer, null=True, unique=True, backref="users", on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    # Migration 0060: which staff role (owner | clerk; '' for customers), a display name, and disabling.
    staff_role = CharField(default="")
    name = CharField(default="")
    disabled_at = DateTimeField(null=True)

    @classmethod
    def by_email(cls, email):
        """The user with this email (case-insensitive), or None."""
        return cls.get_or_none(cls.email == email.strip().lower())


class LoginSession(BaseModel):
    """A server-side record of one login; logging out deletes it.

    The browser's cookie carries only the token's id, so a cookie saved before
    logout cannot be replayed afterwards.
    """

    token = CharField(unique=True)
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    last_seen_at = DateTimeField(default=utcnow)


class Invoice(BaseModel):
    customer = ForeignKeyField(Customer, backref="invoices", on_delete="RESTRICT")
    number = CharField(unique=True)
    issue_date = DateField()
    due_date = DateField()
    period_start = DateField(null=True)
    period_end = DateField(null=True)
    total_cents = BigIntegerField()
    currency = CharField(default="USD")
    void = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    void_reason = CharField(default="")  # migration 0063
    voided_at = DateTimeField(null=True)
    # The sum of the invoice's allocations (migration 0195). Only Allocation.record writes it, in the
    # allocation's own transaction; tests check it against the allocations after every ledger operation.
    paid_cents = BigIntegerField(default=0)

    class Meta:
        indexes = ((("customer", "void", "due_date", "number"), False),  # migration 0195
                   (("customer", "issue_date", "void", "total_cents"), False))

    @classmethod
    def for_customer(cls, customer_id):
        """A customer's non-void invoices, oldest due first."""
        return (
            cls.select()
            .where((cls.customer == customer_id) & (cls.void == False))  # noqa: E712
            .order_by(cls.due_date, cls.number)
        )

    @classmethod
    def open_for(cls, customer_id):
        """A customer's invoices that still have a balance, oldest due first."""
        return cls.for_customer(customer_id).where(cls.total_cents > cls.paid_cents)


class InvoiceLine(BaseModel):
    invoice = ForeignKeyField(Invoice, backref="lines", on_delete="CASCADE")
    position = IntegerField(default=0)
    description = CharField()
    quantity = IntegerField(default=1)
    unit_cents = BigIntegerField()
    amount_cents = BigIntegerField()
    # Migration 0063: 'charge', or 'adjustment' (a credit note: a negative amount added later, never edited).
    # The adjustment lines have an index of their own (migration 0220), which a statement reads.
    kind = CharField(default="charge")
    created_at = DateTimeField(null=True)
    added_by = CharField(default="")
    request_key = CharField(null=True, unique=True)


class PaymentMethod(BaseModel):
    """A saved card or bank account: only the processor's token and display facts."""

    customer = ForeignKeyField(Customer, backref="payment_methods", on_delete="CASCADE")
    processor = CharField()
    processor_ref = CharField(unique=True)
    method_type = CharField()  # card | ach
    brand = CharField(default="")  # card brand or bank name
    last4 = CharField()
    exp_month = IntegerField(null=True)
    exp_year = IntegerField(null=True)
    created_at = DateTimeField(default=utcnow)
    removed_at = DateTimeField(null=True)

    @classmethod
    def active_for(cls, customer_id, method_type=None):
        """A customer's saved, not removed, methods (optionally of one type)."""
        q = cls.select().where((cls.customer == customer_id) & cls.removed_at.is_null())
        if method_type:
            q = q.where(cls.method_type == method_type)
        return q.order_by(cls.id.desc())


class Payment(BaseModel):
    """One payment attempt and its single state (see billing.payments)."""

    ref = CharField(unique=True)
    customer = ForeignKeyField(Customer, backref="payments", on_delete="RESTRICT")
    idempotency_key = CharField(unique=True)
    amount_cents = BigIntegerField()
    currency = CharField(default="USD")
    method_type = CharField()  # card | ach
    status = CharField()
    target_invoice = ForeignKeyField(Invoice, null=True, on_delete="RESTRICT")
    processor = CharField()
    processor_ref = CharField(null=True, unique=True)
    payment_method = ForeignKeyField(PaymentMethod, null=True, on_delete="SET NULL")
    method_brand = CharField(default="")
    method_last4 = CharField(default="")
    billing_name = CharField(default="")
    billing_street = CharField(default="")
    billing_city = CharField(default="")
    billing_state = CharField(default="")
    billing_zip = CharField(default="")
    billing_email = CharField(default="")
    billing_phone = CharField(default="")
    save_for_autopay = BooleanField(default=False)
    origin = CharField(default="portal")  # portal | paylink | autopay
    confirmation_code = CharField(null=True, unique=True)  # billing.receipts (migration 0070)
    fee_cents = BigIntegerField(default=0)  # convenience fee on top of amount_cents, never allocated (0072)
    failure_code = CharField(default="")
    failure_message = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    settled_at = DateTimeField(null=True)
    # Migration 0010: what was owed when the amount was chosen, and when a charge was asked for.
    owed_cents = BigIntegerField(null=True)
    charging_at = DateTimeField(null=True)
    # Migration 0201: the bank account's verification (state awaiting_verification): the processor's page for
    # it, what the customer types there (amounts | descriptor_code), and when the processor stops accepting it.
    verify_url = CharField(default="", max_length=2048)
    verify_type = CharField(default="")
    verify_expires_at = DateTimeField(null=True)
    # Migration 0205: when a remote processor was last asked about it (billing.payments.sync's backoff).
    checked_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("customer", "created_at"), False), (("status", "updated_at"), False),
                   (("created_at", "id"), False),  # the staff list's sort key (migration 0090)
                   (("customer", "status"), False),  # what may still be charged (migration 0010)
                   (("status", "method_type", "created_at"), False),  # the staff list's filters (migration 0091)
                   (("customer", "status", "settled_at", "amount_cents"), False))  # statements (migration 0195)


class Allocation(BaseModel):
    """Money from a succeeded payment applied to an invoice.

    Rows are never edited: a reversal is a new row with a negative amount
    that points at the row it reverses.
    """

    payment = ForeignKeyField(Payment, backref="allocations", on_delete="RESTRICT")
    invoice = ForeignKeyField(Invoice, backref="allocations", on_delete="RESTRICT")
    amount_cents = BigIntegerField()
    reverses = ForeignKeyField("self", null=True, unique=True, on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("invoice",), False), (("payment",), False))

    @classmethod
    def record(cls, payment, invoice, amount_cents, reverses=None):
        """Append an allocation (negative to take money back) and add it to its invoice's paid_cents.

        The one way to write an allocation, so the invoice's running total never drifts from its rows; it
        must run inside the caller's write transaction, which already holds the customer's lock.
        """
        if not cls._meta.database.in_transaction():
            raise RuntimeError("Allocation.record runs inside a write transaction")
        invoice_id = getattr(invoice, "id", invoice)
        row = cls.create(payment=payment, invoice=invoice_id, amount_cents=amount_cents, reverses=reverses)
        Invoice.update(paid_cents=Invoice.paid_cents + amount_cents).where(Invoice.id == invoice_id).execute()
        return row


class CreditEntry(BaseModel):
    """Account credit: +unapplied part of a payment, -credit applied to an invoice."""

    customer = ForeignKeyField(Customer, backref="credit_entries", on_delete="RESTRICT")
    payment = ForeignKeyField(Payment, backref="credit_entries", on_delete="RESTRICT")
    invoice = ForeignKeyField(Invoice, null=True, on_delete="RESTRICT")
    amount_cents = BigIntegerField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("customer",), False),)

    @classmethod
    def balance(cls, customer_id):
        """A customer's account credit in cents."""
        return (
            cls.select(sum_cents(cls.amount_cents))
            .where(cls.customer == customer_id)
            .scalar()
        )


class PaymentInvoice(BaseModel):
    """Invoices a payment is meant for, planned when it starts processing.

    This drives the "Pending" badge while an ACH debit settles; the money is
    only allocated (Allocation) when the payment succeeds.
    """

    payment = ForeignKeyField(Payment, backref="planned", on_delete="CASCADE")
    invoice = ForeignKeyField(Invoice, on_delete="RESTRICT")
    amount_cents = BigIntegerField()

    class Meta:
        indexes = ((("payment", "invoice"), True), (("invoice",), False))


class WebhookEvent(BaseModel):
    """Every processed webhook event, UNIQUE so a redelivery is a no-op."""

    processor = CharField()
    event_id = CharField()
    event_type = CharField()
    received_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("processor", "event_id"), True),)


class AuditLog(BaseModel):
    at = DateTimeField(default=utcnow)
    actor = CharField()
    action = CharField()
    entity = CharField()
    entity_id = CharField()
    detail = TextField(default="")
    ip = CharField(default="")  # migration 0064: the client's address of the request that did it

    class Meta:
        indexes = ((("entity", "entity_id"), False), (("at",), False))


class Throttle(BaseModel):
    """How many guesses (or requests) one account or client address made lately, and until when it waits."""

    key = CharField(unique=True)
    failures = IntegerField(default=0)
    last_failure_at = DateTimeField(default=utcnow)
    blocked_until = DateTimeField(default=utcnow)


class HealthCheck(BaseModel):
    """The one row /healthz rewrites to prove the database can still be written."""

    checked_at = DateTimeField(default=utcnow)


class Outbox(BaseModel):
    """An email waiting to be sent (or sent); see billing.mail."""

    kind = CharField(default="")
    dedupe_key = CharField(null=True, unique=True)
    to_addr = CharField()
    subject = CharField()
    text_body = TextField()
    html_body = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    next_attempt_at = DateTimeField(default=utcnow)
    attempts = IntegerField(default=0)
    last_error = CharField(default="")
    sent_at = DateTimeField(null=True)
    # Migration 0011: queued | sending | sent | failed; the claim of the run sending it; why it failed for good.
    status = CharField(default="queued")
    claimed_by = CharField(default="")
    claimed_until = DateTimeField(null=True)
    reason = CharField(default="")

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


# --- The built-in sandbox processor's own tables. -------------------------
# The sandbox stands in for a remote processor, so it keeps its own records;
# the portal only ever sees their ids, like it would with Stripe's.


class SandboxIntent(BaseModel):
    """A payment intent (kind "payment") or a setup intent (kind "setup") at the sandbox."""

    id = CharField(primary_key=True)
    kind = CharField(default="payment")
    client_secret = CharField(unique=True)
    idempotency_key = CharField(unique=True)
    amount_cents = BigIntegerField()
    currency = CharField()
    method_type = CharField()
    status = CharField()  # requires_payment_method | requires_action | processing | succeeded | failed | canceled
    brand = CharField(default="")
    last4 = CharField(default="")
    exp_month = IntegerField(null=True)
    exp_year = IntegerField(null=True)
    method_token = CharField(default="")
    failure_code = CharField(default="")
    failure_message = CharField(default="")
    settle_after = DateTimeField(null=True)
    next_action = CharField(default="")  # with requires_action: "challenge" (3-D Secure) or "microdeposits"
    verify_attempts = IntegerField(default=0)
    microdeposit_type = CharField(default="")  # with "microdeposits": amounts | descriptor_code (migration 0201)
    verify_expires_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class SandboxRefund(BaseModel):
    """Money the sandbox sent back for a succeeded intent; one per idempotency key."""

    id = CharField(primary_key=True)
    intent = ForeignKeyField(SandboxIntent, column_name="intent_id")
    idempotency_key = CharField(unique=True)
    amount_cents = BigIntegerField()
    status = CharField()  # succeeded
    created_at = DateTimeField(default=utcnow)


class SandboxDispute(BaseModel):
    """A cardholder's (or account holder's) dispute of a succeeded intent, and where it stands."""

    id = CharField(primary_key=True)
    intent = ForeignKeyField(SandboxIntent, column_name="intent_id")
    amount_cents = BigIntegerField()
    status = CharField()  # needs_response | under_review | won | lost (Stripe's names)
    reason = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class SandboxMethod(BaseModel):
    """A reusable token for a card or account the sandbox has seen."""

    id = CharField(primary_key=True)
    method_type = CharField()
    brand = CharField()
    last4 = CharField()
    exp_month = IntegerField(null=True)
    exp_year = IntegerField(null=True)
    # The outcome the test number stands for (never the number itself).
    behaviour = CharField(default="ok")
    created_at = DateTimeField(default=utcnow)


class SandboxEvent(BaseModel):
    """An event the sandbox owes the portal's webhook; kept until delivered."""

    id = CharField(primary_key=True)
    event_type = CharField()
    intent_id = CharField()
    created_at = DateTimeField(default=utcnow)
    delivered_at = DateTimeField(null=True)
    attempts = IntegerField(default=0)


# --- The ISP side (migration 0006): billing-system API tokens, and invite / sign-up / reset tokens.


class ApiToken(BaseModel):
    """A bearer token for the billing-system API; only its SHA-256 is stored."""

    name = CharField()
    prefix = CharField()
    token_hash = CharField(unique=True)
    created_by = CharField()
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)


class AccountToken(BaseModel):
    """A single-use, expiring emailed link: kind 'invite', 'signup', 'reset' or
    'email_change' (billing/email_change.py); stored hashed."""

    kind = CharField()
    token_hash = CharField(unique=True)
    customer = ForeignKeyField(Customer, null=True, backref="account_tokens", on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, backref="account_tokens", on_delete="CASCADE")
    email = CharField()
    created_by = CharField()
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("customer", "kind"), False),)


# --- Saved methods and autopay (migration 0005); the rules are in billing.autopay and billing.methods.


class AutopayPolicy(BaseModel):
    """The ISP's autopay settings: one row (defaults when there is none)."""

    days_before = IntegerField(default=0)  # 0: charge on the due date
    max_attempts = IntegerField(default=3)
    retry_days = IntegerField(default=3)
    upcoming_notice_days = IntegerField(default=3)
    expiry_notice_days = IntegerField(default=30)
    updated_at = DateTimeField(default=utcnow)

    @classmethod
    def current(cls):
        """The policy row, or an unsaved one with the defaults."""
        return cls.select().order_by(cls.id).first() or cls()


class DefaultPaymentMethod(BaseModel):
    """The saved method a customer marked as default."""

    customer = ForeignKeyField(Customer, unique=True, on_delete="CASCADE")
    payment_method = ForeignKeyField(PaymentMethod, on_delete="CASCADE")
    updated_at = DateTimeField(default=utcnow)


class AutopayAuthorization(BaseModel):
    """One acceptance of the autopay authorization text: when, from where, and which version."""

    customer = ForeignKeyField(Customer, backref="autopay_authorizations", on_delete="CASCADE")
    payment = ForeignKeyField(Payment, null=True, unique=True, on_delete="SET NULL")
    payment_method = ForeignKeyField(PaymentMethod, null=True, on_delete="SET NULL")
    source = CharField()  # billing | methods
    text_version = CharField()
    language = CharField(default="en")  # the language the text was shown and accepted in (0200)
    text = TextField()
    accepted_at = DateTimeField(default=utcnow)
    ip = CharField(default="")
    user_agent = CharField(default="")


class AutopayEnrolment(BaseModel):
    """Whether a customer's autopay is on, and with which saved method."""

    customer = ForeignKeyField(Customer, unique=True, on_delete="CASCADE")
    payment_method = ForeignKeyField(PaymentMethod, null=True, on_delete="SET NULL")
    authorization = ForeignKeyField(AutopayAuthorization, null=True, on_delete="SET NULL")
    enabled = BooleanField(default=False, index=True)
    enrolled_at = DateTimeField(null=True)
    disabled_at = DateTimeField(null=True)
    disabled_reason = CharField(default="")
    updated_at = DateTimeField(default=utcnow)


class AutopayCharge(BaseModel):
    """One autopay attempt at one invoice in one cycle; UNIQUE so concurrent runs charge once."""

    customer = ForeignKeyField(Customer, on_delete="RESTRICT")
    invoice = ForeignKeyField(Invoice, on_delete="RESTRICT")
    cycle = CharField()
    attempt = IntegerField()
    payment_method = ForeignKeyField(PaymentMethod, null=True, on_delete="SET NULL")
    payment = ForeignKeyField(Payment, null=True, unique=True, on_delete="SET NULL")
    amount_cents = BigIntegerField()
    currency = CharField(default="USD")
    status = CharField()  # charging | processing | charged | failed | action_required | canceled
    reason_code = CharField(default="")
    reason_message = CharField(default="")
    run_on = DateField()
    retry_on = DateField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("invoice", "cycle", "attempt"), True),
            (("customer", "status"), False),
            (("status", "updated_at"), False),
        )


class MethodSetup(BaseModel):
    """Adding a saved method through the processor's window, without a payment."""

    ref = CharField(unique=True)
    customer = ForeignKeyField(Customer, on_delete="CASCADE")
    processor = CharField()
    processor_ref = CharField(null=True, unique=True)
    method_type = CharField()
    status = CharField()  # open | saved | canceled
    payment_method = ForeignKeyField(PaymentMethod, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


# --- Stripe as the live processor (migration 0004); the rules are in billing.payments. ---


class StripeCustomer(BaseModel):
    """The Stripe Customer that stands for a portal customer."""

    customer = ForeignKeyField(Customer, unique=True, on_delete="RESTRICT")
    stripe_id = CharField(unique=True)
    created_at = DateTimeField(default=utcnow)


class PaymentMandate(BaseModel):
    """The customer's acceptance of the ACH debit mandate for one payment: text, time, IP and browser."""

    payment = ForeignKeyField(Payment, unique=True, backref="mandates", on_delete="RESTRICT")
    text = TextField()
    text_version = CharField(default="")  # billing.legal's version; '' for mandates accepted before it (0200)
    language = CharField(default="en")  # the language the text was shown and accepted in (0200)
    accepted_at = DateTimeField(default=utcnow)
    ip = CharField(default="")
    user_agent = CharField(default="")


class PaymentReversal(BaseModel):
    """Money taken back from a succeeded payment (refund, ACH return, dispute), or given back (dispute won).

    ``processor_ref`` is the processor's id for it (a refund or dispute id), UNIQUE so that
    however often it is reported it is applied once. The ledger side is new negative
    Allocation and CreditEntry rows; old rows are never edited.
    """

    payment = ForeignKeyField(Payment, backref="reversals", on_delete="RESTRICT")
    kind = CharField()  # refund | return | dispute | dispute_won | refund_failed
    amount_cents = BigIntegerField()  # taken back; negative when given back
    fee_cents = BigIntegerField(default=0)  # of the convenience fee, returned with a refund (migration 0190)
    processor_ref = CharField(unique=True)
    reason = CharField(default="")
    actor = CharField(default="")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("payment",), False),)


class OfflinePayment(BaseModel):
    """What staff wrote down for a cash, check or money-order payment taken at the counter (migration 0061).

    The money is the linked Payment (processor 'offline'), allocated by the usual ledger rules.
    """

    payment = ForeignKeyField(Payment, unique=True, backref="offline", on_delete="RESTRICT")
    kind = CharField()  # cash | check | money_order
    check_number = CharField(default="")
    received_on = DateField()
    note = CharField(default="")
    recorded_by = CharField()
    created_at = DateTimeField(default=utcnow)


class PaymentDispute(BaseModel):
    """A dispute of a payment at its latest status (migration 0230); its money is in PaymentReversal.

    Inquiries (``warning_*``) flag the payment for staff and move nothing; billing.payments.record_dispute
    decides what each status does.
    """

    payment = ForeignKeyField(Payment, backref="disputes", on_delete="RESTRICT")
    processor_ref = CharField(unique=True)
    status = CharField()
    amount_cents = BigIntegerField()
    reason = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("payment",), False),)


class RefundRequest(BaseModel):
    """A refund staff confirmed (migration 0062): written before the processor is asked, once per form key."""

    request_key = CharField(unique=True)
    payment = ForeignKeyField(Payment, backref="refund_requests", on_delete="RESTRICT")
    amount_cents = BigIntegerField()  # of the payment's amount; the processor refunds this + fee_cents
    fee_cents = BigIntegerField(default=0)  # the fee's share (migration 0190)
    reason = CharField()
    actor = CharField()
    status = CharField()  # requested | done | failed
    processor_ref = CharField(null=True, unique=True)
    error = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("payment",), False),)


# --- Two-factor login (migration 0073); the rules are in billing.twofactor. ---


class TwoFactor(BaseModel):
    """A login's TOTP secret: on once confirmed, and the last step used (no replays).

    Wrong codes are throttled in billing.throttle's shared counters, like passwords (migration 0170).
    """

    user = ForeignKeyField(User, unique=True, backref="two_factor", on_delete="CASCADE")
    secret = CharField(default="")  # legacy plain value only (before migration 0191); '' once sealed
    sealed_secret = CharField(default="")  # the secret sealed by billing.sealed (AES-GCM, SECRET_KEY)
    enabled_at = DateTimeField(null=True)
    last_step = BigIntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class RecoveryCode(BaseModel):
    """A one-time recovery code, stored only as its SHA-256 hash."""

    user = ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = CharField(unique=True)
    used_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
