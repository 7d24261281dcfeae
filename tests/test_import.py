"""CSV import: good, bad and re-imported files; dry run; credit applied oldest first; CLI and staff page."""
import datetime as dt
import io
import pathlib

import pytest

from billing import accounts, imports
from db.models import AuditLog, CreditEntry, Customer, Invoice, InvoiceLine, Payment
from tests.factories import make_customer
from tests.staff_support import staff  # noqa: F401

SAMPLES = pathlib.Path(__file__).parent.parent / "samples"
CUSTOMERS = (SAMPLES / "customers.csv").read_bytes()
INVOICES = (SAMPLES / "invoices.csv").read_bytes()
HEADER = "invoice_number,account_number,issue_date,due_date,period_start,period_end,description,amount\n"


def test_sample_files_import_and_reimport_changes_nothing(ledger_db):
    r = imports.import_customers(CUSTOMERS)
    assert (r.created, r.updated, r.unchanged) == (3, 0, 0)
    r = imports.import_invoices(INVOICES)
    assert (r.created, r.updated, r.unchanged) == (4, 0, 0)
    inv = Invoice.get(Invoice.number == "INV-2026-0001")
    assert inv.total_cents == 5999 and inv.customer.account_number == "10001"
    assert InvoiceLine.get(InvoiceLine.invoice == inv).description == "Fixed wireless 50 Mbps"

    again_c = imports.import_customers(CUSTOMERS)
    again_i = imports.import_invoices(INVOICES)
    assert again_c.changed == 0 and again_c.unchanged == 3
    assert again_i.changed == 0 and again_i.unchanged == 4
    assert again_i.message() == "Nothing to change: all 4 invoices are already up to date."
    assert Customer.select().count() == 3 and Invoice.select().count() == 4


def test_changed_rows_are_updated_by_account_and_invoice_number(ledger_db):
    imports.import_customers(CUSTOMERS)
    imports.import_invoices(INVOICES)
    changed = CUSTOMERS.replace(b"Ben Okafor", b"Benjamin Okafor")
    r = imports.import_customers(changed)
    assert (r.created, r.updated, r.unchanged) == (0, 1, 2)
    assert Customer.get(Customer.account_number == "10002").name == "Benjamin Okafor"
    r = imports.import_invoices(INVOICES.replace(b"DSL 25 Mbps,45.00", b"DSL 25 Mbps,47.50"))
    assert (r.created, r.updated, r.unchanged) == (0, 1, 3)
    inv = Invoice.get(Invoice.number == "INV-2026-0003")
    assert inv.total_cents == 4750
    assert InvoiceLine.get(InvoiceLine.invoice == inv).amount_cents == 4750


def test_dry_run_reports_and_writes_nothing(ledger_db):
    r = imports.import_customers(CUSTOMERS, dry_run=True)
    assert r.created == 3 and r.dry_run and "Nothing was written" in r.message()
    assert Customer.select().count() == 0


def bad_file():
    return (HEADER
            + "B-1,10001,2026-02-30,2026-03-01,,,Service,10.00\n"      # row 2: impossible date
            + "B-2,10001,2026-02-01,2026-02-21,,,Service,ten\n"        # row 3: bad amount
            + "B-3,99999,2026-02-01,2026-02-21,,,Service,10.00\n"      # row 4: unknown account
            + "B-4,10001,2026-02-01,2026-02-21,,,Service,10.00\n"      # row 5: fine
            + "B-4,10002,2026-02-01,2026-02-21,,,Service,12.00\n"      # row 6: duplicate number
            + "B-5,10001,2026-02-01,2026-01-21,,,Service,-3\n")        # row 7: due before issue, negative


def test_bad_file_reports_every_error_by_row_and_column_and_imports_nothing(ledger_db):
    imports.import_customers(CUSTOMERS)
    with pytest.raises(imports.ImportError_) as e:
        imports.import_invoices(bad_file())
    found = {(err.row, err.column) for err in e.value.errors}
    assert (2, "issue_date") in found
    assert (3, "amount") in found
    assert (6, "invoice_number") in found
    assert (7, "due_date") in found and (7, "amount") in found
    assert Invoice.select().count() == 0
    # Unknown accounts are found once the rows themselves are clean.
    with pytest.raises(imports.ImportError_) as e:
        imports.import_invoices(HEADER + "B-3,99999,2026-02-01,2026-02-21,,,Service,10.00\n"
                                + "B-4,10001,2026-02-01,2026-02-21,,,Service,10.00\n")
    assert [(err.row, err.column) for err in e.value.errors] == [(2, "account_number")]
    assert "no customer has account number '99999'" in str(e.value.errors[0])
    assert Invoice.select().count() == 0


def test_bad_headers_and_bad_customer_rows_are_reported(ledger_db):
    with pytest.raises(imports.ImportError_) as e:
        imports.import_customers("account,name\nA,B\n")
    assert e.value.errors[0].row == 1 and "account_number" in e.value.errors[0].column
    with pytest.raises(imports.ImportError_) as e:
        imports.import_customers("account_number,name,email,zip\nA-1,,not-an-email,7870\nA-1,Ok,,\n")
    found = {(err.row, err.column) for err in e.value.errors}
    assert found == {(2, "name"), (2, "email"), (2, "zip"), (3, "account_number")}
    with pytest.raises(imports.ImportError_):
        imports.import_customers(b"\xff\xfe\x00bad")
    assert Customer.select().count() == 0


def test_amount_of_an_invoice_with_payments_cannot_change(ledger_db):
    imports.import_customers(CUSTOMERS)
    imports.import_invoices(INVOICES)
    inv = Invoice.get(Invoice.number == "INV-2026-0003")
    _pay(inv.customer_id, 1000)
    with pytest.raises(imports.ImportError_) as e:
        imports.import_invoices(INVOICES.replace(b"DSL 25 Mbps,45.00", b"DSL 25 Mbps,47.50"))
    assert e.value.errors[0].column == "amount" and e.value.errors[0].row == 4
    assert Invoice.get_by_id(inv.id).total_cents == 4500


def _pay(customer_id, cents):
    """A succeeded payment posted by the ledger rules (as the pay flow does)."""
    from db import write_tx
    with write_tx():
        p = Payment.create(ref=f"PAY-T{customer_id}{cents}", customer=customer_id, idempotency_key=f"k{customer_id}{cents}",
                           amount_cents=cents, method_type="card", status="succeeded", processor="sandbox")
        accounts.post_payment(p)
    return p


def test_credit_on_the_account_goes_to_new_invoices_oldest_first(ledger_db):
    c = make_customer(account_number="C-1")
    _pay(c.id, 10000)  # nothing owed: all of it is credit
    assert CreditEntry.balance(c.id) == 10000
    csv = (HEADER + "N-2,C-1,2026-02-01,2026-02-21,,,Feb,60.00\n"
           + "N-1,C-1,2026-01-01,2026-01-21,,,Jan,60.00\n")
    r = imports.import_invoices(csv)
    assert r.created == 2 and r.credit_applied_cents == 10000
    views = {v.invoice.number: v for v in accounts.invoice_views(c.id, on=dt.date(2026, 1, 2))}
    assert views["N-1"].balance_cents == 0        # the older invoice is paid first
    assert views["N-2"].balance_cents == 2000
    assert CreditEntry.balance(c.id) == 0


def test_cli_import_dry_run_errors_and_exit_codes(runner, tmp_path):
    c = tmp_path / "customers.csv"
    c.write_bytes(CUSTOMERS)
    result = runner.invoke(args=["import", "customers", str(c), "--dry-run"])
    assert result.exit_code == 0 and "Dry run: 3 customers would be created" in result.output
    assert Customer.select().count() == 0
    assert runner.invoke(args=["import", "customers", str(c)]).exit_code == 0
    again = runner.invoke(args=["import", "customers", str(c)])
    assert again.exit_code == 0 and "Nothing to change" in again.output
    bad = tmp_path / "invoices.csv"
    bad.write_text(bad_file())
    result = runner.invoke(args=["import", "invoices", str(bad)])
    assert result.exit_code == 1
    assert "row 2, issue_date" in result.output and "nothing was imported" in result.output
    assert Invoice.select().count() == 0
    good = tmp_path / "good.csv"
    good.write_bytes(INVOICES)
    assert runner.invoke(args=["import", "invoices", str(good)]).exit_code == 0
    assert Invoice.select().count() == 4
    assert AuditLog.select().where(AuditLog.action == "import.invoices").count() == 1


def test_staff_import_page_imports_reports_errors_and_re_imports(app, staff):
    def upload(kind, data, dry_run=False):
        form = {"kind": kind, "file": (io.BytesIO(data), f"{kind}.csv")}
        if dry_run:
            form["dry_run"] = "1"
        return staff.post("/staff/import", form, content_type="multipart/form-data")

    page = upload("customers", CUSTOMERS, dry_run=True).get_data(as_text=True)
    assert "3 customers would be created" in page and Customer.select().count() == 0
    assert "3 customers were created" in upload("customers", CUSTOMERS).get_data(as_text=True)
    resp = upload("invoices", bad_file().encode())
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Nothing was imported" in page and "issue_date" in page
    assert "4 invoices were created" in upload("invoices", INVOICES).get_data(as_text=True)
    assert "Nothing to change" in upload("invoices", INVOICES).get_data(as_text=True)
    missing = staff.post("/staff/import", {"kind": "customers"}, content_type="multipart/form-data")
    assert missing.status_code == 422 and 'id="file-error"' in missing.get_data(as_text=True)


def test_large_reimport_finds_every_invoice_unchanged_and_one_edit(ledger_db):
    imports.import_customers("account_number,name\nBIG-1,Big Customer\n")
    rows = [f"BIG-{n:05d},BIG-1,2026-01-01,2026-01-21,,,Line {n},1.00\n" for n in range(3000)]
    assert imports.import_invoices(HEADER + "".join(rows)).created == 3000
    again = imports.import_invoices(HEADER + "".join(rows))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3000)
    rows[1234] = rows[1234].replace("Line 1234", "Line 1234 (corrected)")
    edited = imports.import_invoices(HEADER + "".join(rows))
    assert (edited.updated, edited.unchanged) == (1, 2999)
    inv = Invoice.get(Invoice.number == "BIG-01234")
    assert InvoiceLine.get(InvoiceLine.invoice == inv).description == "Line 1234 (corrected)"


def _multipart(fields):
    """A multipart body built in memory (the test client would spool a big one to an unclosed temp file)."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    fields = {k: FileStorage(io.BytesIO(v[0]), filename=v[1]) if isinstance(v, tuple) else v
              for k, v in fields.items()}
    boundary, body = encode_multipart(fields)
    return body, f"multipart/form-data; boundary={boundary}"


def test_staff_can_upload_a_file_bigger_than_the_usual_request_limit(app, staff):
    rows = "".join(f"A{n:07d},Customer number {n} with a long name,c{n}@example.test,512-555-0100,"
                   f"{n} Main St,Austin,TX,78701\n" for n in range(20000))
    data = ("account_number,name,email,phone,street,city,state,zip\n" + rows).encode()
    assert len(data) > app.config["MAX_CONTENT_LENGTH"]
    body, ctype = _multipart({"csrf_token": staff.csrf(), "kind": "customers", "file": (data, "big.csv")})
    resp = staff.client.post("/staff/import", data=body, content_type=ctype)
    assert resp.status_code == 200 and "20000 customers were created" in resp.get_data(as_text=True)
    anonymous = app.test_client()
    body, ctype = _multipart({"kind": "customers", "file": (data, "big.csv")})
    assert anonymous.post("/staff/import", data=body, content_type=ctype).status_code == 413
