"""CSV import of customers and invoices, and the single-record upserts the API shares with it.

A file is checked completely before anything is written; then it is written in
one transaction, so a bad file imports nothing. Rows are upserted by account
number and by invoice number: importing the same file again changes nothing and
says so. Account credit is applied to newly imported invoices, oldest first.
"""
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

from peewee import IntegrityError

from billing import accounts, bounds, money
from db import database, is_postgres, write_tx
from db.models import Allocation, Customer, Invoice, InvoiceLine, Isp, Payment, PaymentInvoice, utcnow

CUSTOMER_COLUMNS = ("account_number", "name", "email", "phone", "street", "city", "state", "zip")
CUSTOMER_REQUIRED = ("account_number", "name")
INVOICE_COLUMNS = ("invoice_number", "account_number", "issue_date", "due_date", "period_start", "period_end",
                   "description", "amount")
INVOICE_REQUIRED = ("invoice_number", "account_number", "issue_date", "due_date", "amount")
MAX_TEXT = 255
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_BATCH = 500


class ImportError_(Exception):
    """A file that cannot be imported: every problem, by row and column."""

    def __init__(self, errors):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass
class RowError:
    row: int  # line in the file, the header being row 1
    column: str
    message: str
    conflict: bool = False  # the data is fine but clashes with what is stored (money received, void, owner)

    def __str__(self):
        return f"row {self.row}, {self.column}: {self.message}" if self.row else f"{self.column}: {self.message}"


@dataclass
class Result:
    """What an import did, or (dry run) would do."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    credit_applied_cents: int = 0
    notes: list = field(default_factory=list)

    @property
    def changed(self):
        return self.created + self.updated

    def message(self):
        """One line for people: what changed, or that nothing did."""
        what = "customers" if self.kind == "customers" else "invoices"
        verb = "would be" if self.dry_run else "were"
        if not self.changed:
            return f"Nothing to change: all {self.unchanged} {what} are already up to date."
        msg = (f"{self.created} {what} {verb} created, {self.updated} updated, "
               f"{self.unchanged} unchanged.")
        if self.dry_run:
            msg = "Dry run: " + msg + " Nothing was written."
        return msg


# --- Checking one record (shared by CSV rows and API requests). ---------------


def _text(raw, key, errors, required=False, limit=MAX_TEXT):
    value = (raw.get(key) or "").strip()
    if required and not value:
        errors[key] = "is required"
    elif len(value) > limit:
        errors[key] = f"is too long ({limit} characters at most)"
    elif bounds.line_problem(value):
        errors[key] = bounds.line_problem(value)
    return value


def _date(raw, key, errors, required=False):
    value = (raw.get(key) or "").strip()
    if not value:
        if required:
            errors[key] = "is required (YYYY-MM-DD)"
        return None
    try:
        return bounds.parse_date(value)
    except bounds.BoundsError as e:
        errors[key] = f"'{value[:20]}': {e}"
        return None


def clean_customer(raw):
    """(fields, errors) for one customer record; errors maps column to message."""
    errors = {}
    data = {k: _text(raw, k, errors, required=k in CUSTOMER_REQUIRED) for k in CUSTOMER_COLUMNS}
    if data["account_number"] and "account_number" not in errors and not _NUMBER.match(data["account_number"]):
        errors["account_number"] = "use letters, digits and . _ / - only (64 at most)"
    data["email"] = data["email"].lower()
    if data["email"] and not _EMAIL.match(data["email"]):
        errors.setdefault("email", f"'{data['email'][:40]}' is not an email address")
    data["state"] = data["state"].upper()
    if data["zip"] and not re.match(r"^[0-9]{5}(-[0-9]{4})?$", data["zip"], re.ASCII):
        errors.setdefault("zip", "use a 5-digit ZIP code, like 78701")
    return data, errors


def clean_invoice(raw):
    """(fields, errors) for one invoice record; ``amount`` becomes ``total_cents``."""
    errors = {}
    data = {
        "number": _text(raw, "invoice_number", errors, required=True),
        "account_number": _text(raw, "account_number", errors, required=True),
        "issue_date": _date(raw, "issue_date", errors, required=True),
        "due_date": _date(raw, "due_date", errors, required=True),
        "period_start": _date(raw, "period_start", errors),
        "period_end": _date(raw, "period_end", errors),
        "description": _text(raw, "description", errors) or "Internet service",
    }
    if data["number"] and "invoice_number" not in errors and not _NUMBER.match(data["number"]):
        errors["invoice_number"] = "use letters, digits and . _ / - only (64 at most)"
    amount = raw.get("amount")
    amount = "" if amount is None else str(amount).strip()
    if amount in ("0", "0.0", "0.00"):
        data["total_cents"] = 0
    else:
        try:
            data["total_cents"] = money.parse_amount(amount)
        except money.AmountError as e:
            errors["amount"] = f"'{amount[:20]}': {e}" if amount else "is required, like 45.00"
    if data["issue_date"] and data["due_date"] and data["due_date"] < data["issue_date"]:
        errors["due_date"] = "is before the issue date"
    if data["period_start"] and data["period_end"] and data["period_end"] < data["period_start"]:
        errors["period_end"] = "is before period_start"
    return data, errors


# --- Comparing with what is stored. --------------------------------------------


def _customer_changes(existing, data):
    return {k: v for k, v in data.items() if k != "account_number" and getattr(existing, k) != v}


def _invoice_state(numbers=None):
    """number -> (id, customer_id, issue, due, p_start, p_end, total, void, description) for stored invoices."""
    q = Invoice.select(Invoice.id, Invoice.number, Invoice.customer, Invoice.issue_date, Invoice.due_date,
                       Invoice.period_start, Invoice.period_end, Invoice.total_cents, Invoice.void)
    if numbers is not None:
        q = q.where(Invoice.number.in_(list(numbers)))
    state = {}
    for row in q.tuples().iterator():
        state[row[1]] = row
    return state


def _first_line(invoice_ids):
    """invoice id -> description of its first line."""
    ids = list(invoice_ids)
    if len(ids) > 5 * _BATCH:  # most of the table: one scan beats many IN lists
        wanted = set(ids)
        rows = database.execute_sql('SELECT invoice_id, description FROM "invoice_line" WHERE position = 0')
        return {inv: desc for inv, desc in rows if inv in wanted}
    out = {}
    for i in range(0, len(ids), _BATCH):
        q = (InvoiceLine.select(InvoiceLine.invoice, InvoiceLine.description)
             .where(InvoiceLine.invoice.in_(ids[i:i + _BATCH]) & (InvoiceLine.position == 0)))
        out.update({inv: desc for inv, desc in q.tuples()})
    return out


def _has_money(invoice_id):
    """True when payments are applied to, or on their way to, the invoice."""
    if Allocation.select().where(Allocation.invoice == invoice_id).exists():
        return True
    return (PaymentInvoice.select().join(Payment)
            .where((PaymentInvoice.invoice == invoice_id) & Payment.status.in_(accounts.PLANNED)).exists())


def _invoice_diff(stored, line_desc, data, customer_id):
    """(changes, error column, error message) for a stored invoice against new data."""
    _id, _num, cust, issue, due, p_start, p_end, total, void = stored
    if cust != customer_id:
        return None, "account_number", "this invoice number already belongs to another account"
    if void:
        return None, "invoice_number", "this invoice is void and cannot be changed"
    changes = {}
    for key, old in (("issue_date", issue), ("due_date", due), ("period_start", p_start),
                     ("period_end", p_end), ("total_cents", total)):
        old = dt.date.fromisoformat(old) if isinstance(old, str) else old
        if old != data[key]:
            changes[key] = data[key]
    if line_desc != data["description"]:
        changes["description"] = data["description"]
    if "total_cents" in changes and _has_money(_id):
        return None, "amount", "payments are already applied to this invoice, so its amount cannot change"
    if "total_cents" in changes and InvoiceLine.select().where(
            (InvoiceLine.invoice == _id) & (InvoiceLine.kind == "adjustment")).exists():
        return None, "amount", "this invoice has an adjustment (credit note), so its amount cannot change here"
    return changes, None, None


def _apply_invoice_changes(invoice_id, changes):
    inv_fields = {k: v for k, v in changes.items() if k != "description"}
    if inv_fields:
        Invoice.update(**inv_fields).where(Invoice.id == invoice_id).execute()
    if "total_cents" in changes or "description" in changes:
        line = InvoiceLine.get_or_none((InvoiceLine.invoice == invoice_id) & (InvoiceLine.position == 0))
        total = Invoice.get_by_id(invoice_id).total_cents
        if line is None:
            InvoiceLine.create(invoice=invoice_id, position=0, description=changes.get("description", "Service"),
                               quantity=1, unit_cents=total, amount_cents=total)
        else:
            InvoiceLine.update(description=changes.get("description", line.description), quantity=1,
                               unit_cents=total, amount_cents=total).where(InvoiceLine.id == line.id).execute()


# --- Reading a CSV file. ------------------------------------------------------------


def read_csv(data, columns, required):
    """Rows of a CSV (bytes or text) as (row number, dict); header problems raise ImportError_."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportError_([RowError(0, "file", "is not UTF-8 text; save it as CSV UTF-8")]) from None
    reader = csv.reader(io.StringIO(data, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportError_([RowError(0, "file", "is empty")]) from None
    except csv.Error as e:
        raise ImportError_([RowError(1, "file", f"is not valid CSV ({e})")]) from None
    header = [h.strip().lower() for h in header]
    errors = []
    missing = [c for c in required if c not in header]
    if missing:
        errors.append(RowError(1, ", ".join(missing), "missing column(s); the header row must name "
                               + ", ".join(columns)))
    unknown = [h for h in header if h and h not in columns]
    if unknown:
        errors.append(RowError(1, ", ".join(unknown), "unknown column(s); expected " + ", ".join(columns)))
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        errors.append(RowError(1, ", ".join(dupes), "column named more than once"))
    if errors:
        raise ImportError_(errors)
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header):
                errors.append(RowError(line, "row", f"has {len(values)} values but the header has {len(header)}"))
                continue
            rows.append((line, dict(zip(header, values))))
    except csv.Error as e:
        errors.append(RowError(reader.line_num, "file", f"is not valid CSV ({e})"))
    if errors:
        raise ImportError_(errors)
    return rows


# --- Importing. -------------------------------------------------------------------


def _clean_rows(rows, clean_row, key, column):
    """Clean every row and refuse duplicate keys; (row number, clean record) pairs, or ImportError_ for all."""
    errors, cleaned, seen = [], [], {}
    for line, raw in rows:
        clean, errs = clean_row(raw)
        errors += [RowError(line, col, msg) for col, msg in errs.items()]
        value = clean[key]
        if value and column not in errs:
            if value in seen:
                errors.append(RowError(line, column, f"'{value}' is also on row {seen[value]}"))
            seen.setdefault(value, line)
        cleaned.append((line, clean))
    if errors:
        raise ImportError_(errors)
    return cleaned


def import_customers(data, dry_run=False, actor="system"):
    """Upsert customers from CSV by account number; all or nothing. Returns a Result."""
    return upsert_customers(read_csv(data, CUSTOMER_COLUMNS, CUSTOMER_REQUIRED), dry_run, actor)


def upsert_customers(rows, dry_run=False, actor="system"):
    """Upsert (row number, record) pairs by account number; all or nothing. Returns a Result."""
    cleaned = _clean_rows(rows, clean_customer, "account_number", "account_number")
    result = Result("customers", dry_run=dry_run)
    with database.atomic():  # compared in a read snapshot, without the write lock (see upsert_invoices)
        existing = {c.account_number: c for c in Customer.select().iterator()}
        new, updates = [], []
        for _line, clean in cleaned:
            old = existing.get(clean["account_number"])
            if old is None:
                new.append(clean)
            else:
                changes = _customer_changes(old, clean)
                if changes:
                    updates.append((old.id, changes))
                else:
                    result.unchanged += 1
    result.created, result.updated = len(new), len(updates)
    if dry_run or not result.changed:
        return result
    with write_tx():
        now = utcnow()
        try:
            with database.atomic():
                for i in range(0, len(new), _BATCH):
                    Customer.insert_many([{**c, "created_at": now} for c in new[i:i + _BATCH]]).execute()
        except IntegrityError:
            raise ImportError_([RowError(0, "account_number", "some of these customers were created by someone "
                                         "else while the file was checked; nothing was imported: import it again",
                                         conflict=True)]) from None
        for cid, changes in updates:
            Customer.update(**changes).where(Customer.id == cid).execute()
        accounts.audit(actor, "import.customers", "customer", "*", created=result.created, updated=result.updated,
                       unchanged=result.unchanged)
    return result


def import_invoices(data, dry_run=False, actor="system"):
    """Upsert invoices from CSV by invoice number; all or nothing; credit goes to new invoices oldest first."""
    return upsert_invoices(read_csv(data, INVOICE_COLUMNS, INVOICE_REQUIRED), dry_run, actor)


def _compare_invoices(cleaned, result, numbers=None):
    """(new, updates, errors) for cleaned rows against the stored invoices (only ``numbers``, if given)."""
    errors = []  # problems only the database can show: unknown customers, conflicting amounts
    customers = dict(Customer.select(Customer.account_number, Customer.id).tuples().iterator())
    stored = _invoice_state(numbers)
    lines_of = {}
    to_compare = [stored[c["number"]][0] for _l, c in cleaned if c["number"] in stored]
    if to_compare:
        lines_of = _first_line(to_compare)
    new, updates = [], []
    for line, clean in cleaned:
        cid = customers.get(clean["account_number"])
        if cid is None:
            errors.append(RowError(line, "account_number",
                                   f"no customer has account number '{clean['account_number']}'; import customers first"))
            continue
        old = stored.get(clean["number"])
        if old is None:
            new.append((cid, clean))
            continue
        changes, col, msg = _invoice_diff(old, lines_of.get(old[0]), clean, cid)
        if col:
            errors.append(RowError(line, col, msg, conflict=True))
        elif changes:
            updates.append((old[0], changes, line, clean))
        else:
            result.unchanged += 1
    return new, updates, errors


def upsert_invoices(rows, dry_run=False, actor="system"):
    """Upsert (row number, record) pairs by invoice number; all or nothing. Returns a Result.

    The file is compared with the database in a read transaction, which takes no write lock, so customers
    can keep paying meanwhile; only the writes run under the write lock, in one transaction. Rows to update
    are compared again under the lock (a payment may have reached one of them meanwhile), and an invoice
    number someone created meanwhile fails the UNIQUE key: either way nothing is imported.
    """
    cleaned = _clean_rows(rows, clean_invoice, "number", "invoice_number")
    result = Result("invoices", dry_run=dry_run)
    currency = (Isp.current() or Isp(name="")).currency
    with database.atomic():  # a consistent snapshot to compare against; SQLite: no write lock
        new, updates, errors = _compare_invoices(cleaned, result)
    if errors:
        raise ImportError_(errors)
    result.created, result.updated = len(new), len(updates)
    if dry_run or not result.changed:
        return result
    with write_tx():
        if updates:
            again = Result("invoices")
            _new, updates, errors = _compare_invoices([(line, clean) for _i, _c, line, clean in updates], again,
                                                      numbers=[clean["number"] for _i, _c, _l, clean in updates])
            if errors:
                raise ImportError_(errors)
        now = utcnow()
        before = database.execute_sql('SELECT COALESCE(MAX(id), 0) FROM "invoice"').fetchone()[0]
        try:
            with database.atomic():
                bulk_insert(Invoice, ("customer", "number", "issue_date", "due_date", "period_start", "period_end",
                                      "total_cents", "currency", "void", "created_at"),
                            ((cid, c["number"], c["issue_date"], c["due_date"], c["period_start"], c["period_end"],
                              c["total_cents"], currency, False, now) for cid, c in new))
        except IntegrityError:
            raise ImportError_([RowError(0, "invoice_number", "some of these invoices were created by someone else "
                                         "while the file was checked; nothing was imported: import it again",
                                         conflict=True)]) from None
        ids = dict(database.execute_sql(f'SELECT number, id FROM "invoice" WHERE id > {database.param}',
                                        (before,)).fetchall())
        bulk_insert(InvoiceLine, ("invoice", "position", "description", "quantity", "unit_cents", "amount_cents"),
                    ((ids[c["number"]], 0, c["description"], 1, c["total_cents"], c["total_cents"])
                     for _cid, c in new))
        for invoice_id, changes, _line, _clean in updates:
            _apply_invoice_changes(invoice_id, changes)
        result.updated = len(updates)
        result.credit_applied_cents = _apply_credit_to(sorted({cid for cid, _c in new}))
        accounts.audit(actor, "import.invoices", "invoice", "*", created=result.created, updated=result.updated,
                       unchanged=result.unchanged, credit_applied_cents=result.credit_applied_cents)
    return result


def _sql_value(value):
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # the form peewee stores
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def bulk_insert(model, fields, rows):
    """INSERT rows through one prepared statement (peewee's insert_many spends most of its time building SQL).

    On PostgreSQL the rows go 1,000 to a statement (psycopg2's execute_values): executemany there is one
    round trip a row, which made a 100,000-row import take minutes.
    """
    meta = model._meta
    columns = ", ".join(f'"{meta.fields[f].column_name}"' for f in fields)
    cursor = database.cursor()
    if is_postgres():
        from psycopg2.extras import execute_values

        sql = f'INSERT INTO "{meta.table_name}" ({columns}) VALUES %s'

        def flush(batch):
            execute_values(cursor, sql, batch, page_size=1000)
    else:
        marks = ", ".join([database.param] * len(fields))
        sql = f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks})'

        def flush(batch):
            cursor.executemany(sql, batch)
    batch = []
    for row in rows:
        batch.append(tuple(_sql_value(v) for v in row))
        if len(batch) >= 5000:
            flush(batch)
            batch = []
    if batch:
        flush(batch)


def _apply_credit_to(customer_ids):
    """Apply account credit, oldest invoice first, for those of these customers who have any."""
    from db.models import CreditEntry
    from peewee import fn

    with_credit = []
    for i in range(0, len(customer_ids), _BATCH):
        q = (CreditEntry.select(CreditEntry.customer).where(CreditEntry.customer.in_(customer_ids[i:i + _BATCH]))
             .group_by(CreditEntry.customer).having(fn.SUM(CreditEntry.amount_cents) > 0))
        with_credit += [row[0] for row in q.tuples()]
    return sum(accounts.apply_credit(cid) for cid in with_credit)


# --- One record at a time (the API). -----------------------------------------------


def upsert_customer(raw, actor="api"):
    """Create or update one customer; returns (customer, 'created'|'updated'|'unchanged') or raises ImportError_."""
    clean, errs = clean_customer(raw)
    if errs:
        raise ImportError_([RowError(0, col, msg) for col, msg in errs.items()])
    with write_tx():
        old = Customer.get_or_none(Customer.account_number == clean["account_number"])
        if old is None:
            customer = Customer.create(**clean)
            accounts.audit(actor, "customer.created", "customer", customer.id)
            return customer, "created"
        changes = _customer_changes(old, clean)
        if not changes:
            return old, "unchanged"
        Customer.update(**changes).where(Customer.id == old.id).execute()
        accounts.audit(actor, "customer.updated", "customer", old.id, fields=sorted(changes))
        return Customer.get_by_id(old.id), "updated"


def upsert_invoice(raw, actor="api"):
    """Create or update one invoice; returns (invoice, 'created'|'updated'|'unchanged') or raises ImportError_."""
    clean, errs = clean_invoice(raw)
    if errs:
        raise ImportError_([RowError(0, col, msg) for col, msg in errs.items()])
    with write_tx():
        customer = Customer.get_or_none(Customer.account_number == clean["account_number"])
        if customer is None:
            raise ImportError_([RowError(0, "account_number", "no customer has this account number")])
        stored = _invoice_state([clean["number"]]).get(clean["number"])
        if stored is None:
            currency = (Isp.current() or Isp(name="")).currency
            inv = accounts.add_invoice(customer.id, clean["number"], clean["issue_date"], clean["due_date"],
                                       [(clean["description"], 1, clean["total_cents"])],
                                       period=(clean["period_start"], clean["period_end"]), currency=currency,
                                       actor=actor)
            return inv, "created"
        changes, col, msg = _invoice_diff(stored, _first_line([stored[0]]).get(stored[0]), clean, customer.id)
        if col:
            raise ImportError_([RowError(0, col, msg, conflict=True)])
        if not changes:
            return Invoice.get_by_id(stored[0]), "unchanged"
        _apply_invoice_changes(stored[0], changes)
        accounts.audit(actor, "invoice.updated", "invoice", stored[0], fields=sorted(changes))
        return Invoice.get_by_id(stored[0]), "updated"


def void_invoice(number, actor="api"):
    """Mark an invoice void; refuses (ValueError) when money is applied to or pending on it."""
    with write_tx():
        inv = Invoice.get_or_none(Invoice.number == number)
        if inv is None:
            raise LookupError(number)
        if inv.void:
            return inv, "unchanged"
        if _has_money(inv.id):
            raise ValueError("payments are applied to or pending on this invoice; it cannot be voided")
        Invoice.update(void=True).where(Invoice.id == inv.id).execute()
        accounts.audit(actor, "invoice.voided", "invoice", inv.id, number=number)
        return Invoice.get_by_id(inv.id), "voided"
