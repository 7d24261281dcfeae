"""The billing-system API: token authentication, validation, upserts, void, and cursor paging."""
import datetime as dt

import pytest

from billing import accounts
from billing import api as rules
from db import write_tx
from db.models import ApiToken, Customer, Invoice, Payment, utcnow
from tests.factories import make_customer, make_invoice
from tests.staff_support import staff  # noqa: F401


@pytest.fixture
def token(app):
    _row, token = rules.create_token("Billing system", actor="test")
    return token


@pytest.fixture
def api(app, client, token):
    app.config["API_FEED_LAG_SECONDS"] = 0  # see test_recent_changes_wait_for_the_feed_lag
    class Api:
        headers = {"Authorization": f"Bearer {token}"}

        def get(self, url, **kw):
            return client.get(url, headers=self.headers, **kw)

        def put(self, url, body):
            return client.put(url, json=body, headers=self.headers)

        def post(self, url, body=None):
            return client.post(url, json=body or {}, headers=self.headers)

    return Api()


def test_tokens_are_stored_hashed(app, token):
    row = ApiToken.get()
    assert token not in (row.token_hash, row.prefix) and token.startswith(row.prefix)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer isp_wrong", "Basic abc", "isp_x"])
def test_requests_without_a_valid_token_get_401(app, client, header):
    headers = {"Authorization": header} if header else {}
    resp = client.get("/api/v1/payments", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in resp.get_json()


def test_revoked_token_stops_working_at_once(app, api, token):
    assert api.get("/api/v1/payments").status_code == 200
    rules.revoke_token(ApiToken.get().id)
    assert api.get("/api/v1/payments").status_code == 401


def test_upsert_customer_creates_updates_and_reports_unchanged(app, api):
    body = {"name": "Gil Hart", "email": "gil@example.test", "zip": "78701"}
    r = api.put("/api/v1/customers/G-1", body)
    assert r.status_code == 201 and r.get_json()["result"] == "created"
    assert api.put("/api/v1/customers/G-1", body).get_json()["result"] == "unchanged"
    r = api.put("/api/v1/customers/G-1", {**body, "name": "Gilbert Hart"})
    assert r.status_code == 200 and r.get_json()["result"] == "updated"
    assert Customer.get(Customer.account_number == "G-1").name == "Gilbert Hart"
    assert api.get("/api/v1/customers/G-1").get_json()["customer"]["email"] == "gil@example.test"
    assert api.get("/api/v1/customers/nope").status_code == 404


def test_validation_errors_are_clear_4xx(app, api, client):
    r = client.put("/api/v1/customers/G-1", data="not json", headers=api.headers)
    assert r.status_code == 400 and "JSON" in r.get_json()["error"]
    r = api.put("/api/v1/customers/G-1", {"name": "", "email": "bad", "colour": "red", "zip": 78701})
    assert r.status_code == 422
    assert set(r.get_json()["fields"]) == {"colour", "zip"}
    r = api.put("/api/v1/customers/G-1", {"name": "", "email": "bad"})
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"name", "email"}
    r = api.put("/api/v1/customers/G-1", {"name": "X", "account_number": "G-2"})
    assert r.status_code == 422 and "account_number" in r.get_json()["fields"]
    assert Customer.select().count() == 0
    r = api.put("/api/v1/invoices/I-1", {"account_number": "nobody", "issue_date": "2026-01-01",
                                         "due_date": "2026-01-21", "amount": "10.00"})
    assert r.status_code == 422 and "account_number" in r.get_json()["fields"]
    r = api.put("/api/v1/invoices/I-1", {"account_number": "nobody", "issue_date": "01/01/2026",
                                         "due_date": "2026-01-21", "amount_cents": -5})
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"amount_cents"}
    assert api.get("/api/v1/payments?limit=0").status_code == 400
    assert api.get("/api/v1/payments?since=garbage").status_code == 400
    assert api.get("/api/v1/payments?status=weird").status_code == 400


def test_upsert_invoice_applies_credit_and_voids(app, api):
    c = make_customer(account_number="H-1")
    r = api.put("/api/v1/invoices/H-INV-1", {"account_number": "H-1", "issue_date": "2026-01-01",
                                             "due_date": "2026-01-21", "amount_cents": 4999,
                                             "description": "Wireless"})
    assert r.status_code == 201
    inv = r.get_json()["invoice"]
    assert inv["total_cents"] == 4999 and inv["paid_cents"] == 0 and inv["pay_url"].startswith("http")
    same = api.put("/api/v1/invoices/H-INV-1", {"account_number": "H-1", "issue_date": "2026-01-01",
                                                "due_date": "2026-01-21", "amount": "49.99",
                                                "description": "Wireless"})
    assert same.get_json()["result"] == "unchanged"
    v = api.post("/api/v1/invoices/H-INV-1/void")
    assert v.status_code == 200 and v.get_json()["invoice"]["void"] is True
    assert accounts.summary(c.id).balance_cents == 0
    assert api.post("/api/v1/invoices/NOPE/void").status_code == 404


def test_an_invoice_with_payments_cannot_be_voided_or_repriced(app, api):
    c = make_customer(account_number="K-1")
    inv = make_invoice(c, cents=3000, number="K-INV-1")
    _succeed(c.id, 1000, "k1")
    assert api.post("/api/v1/invoices/K-INV-1/void").status_code == 409
    r = api.put("/api/v1/invoices/K-INV-1", {"account_number": "K-1", "issue_date": str(inv.issue_date),
                                             "due_date": str(inv.due_date), "amount": "40.00"})
    assert r.status_code == 409
    assert Invoice.get_by_id(inv.id).total_cents == 3000 and not Invoice.get_by_id(inv.id).void


def _succeed(customer_id, cents, key, status="succeeded"):
    with write_tx():
        p = Payment.create(ref=f"PAY-{key}", customer=customer_id, idempotency_key=f"idem-{key}", amount_cents=cents,
                           method_type="card", status=status, processor="sandbox", settled_at=utcnow())
        if status == "succeeded":
            accounts.post_payment(p)
    return p


def test_payments_since_a_cursor_pages_through_every_payment_once(app, api):
    c = make_customer(account_number="P-1")
    make_invoice(c, cents=100000)
    for n in range(7):
        _succeed(c.id, 1000 + n, f"p{n}")
    with write_tx():
        Payment.create(ref="PAY-started", customer=c.id, idempotency_key="idem-started", amount_cents=5,
                       method_type="card", status="created", processor="sandbox")
    seen, cursor = [], None
    for _ in range(5):
        url = "/api/v1/payments?limit=3" + (f"&since={cursor}" if cursor else "")
        body = api.get(url).get_json()
        seen += [p["ref"] for p in body["payments"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert seen == [f"PAY-p{n}" for n in range(7)]
    first = api.get("/api/v1/payments?limit=1").get_json()["payments"][0]
    assert first["account_number"] == "P-1" and first["status"] == "succeeded"
    assert first["applied"][0]["amount_cents"] == 1000
    # Nothing new since the last cursor; a later change shows up once.
    assert api.get(f"/api/v1/payments?since={cursor}").get_json()["payments"] == []
    _succeed(c.id, 500, "late")
    later = api.get(f"/api/v1/payments?since={cursor}").get_json()
    assert [p["ref"] for p in later["payments"]] == ["PAY-late"]


def test_staff_create_and_revoke_tokens(app, staff, client):
    page = staff.post("/staff/api-tokens", {"name": "Main billing"}).get_data(as_text=True)
    import re
    token = re.search(r'id="new-token" readonly value="([^"]+)"', page).group(1)
    assert client.get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    again = staff.get("/staff/api-tokens").get_data(as_text=True)
    assert token not in again and "Main billing" in again
    bad = staff.post("/staff/api-tokens", {"name": ""})
    assert bad.status_code == 422 and 'id="name-error"' in bad.get_data(as_text=True)
    staff.post(f"/staff/api-tokens/{ApiToken.get().id}/revoke", {})
    assert client.get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_api_needs_no_csrf_token_but_pages_still_do(app, api, client):
    assert api.put("/api/v1/customers/Z-1", {"name": "Zed"}).status_code == 201
    assert client.post("/signup", data={"account_number": "Z-1"}).status_code == 400


def test_recent_changes_wait_for_the_feed_lag(app, api):
    app.config["API_FEED_LAG_SECONDS"] = 5
    c = make_customer()
    make_invoice(c, cents=5000)
    p = _succeed(c.id, 1000, "lagged")
    assert api.get("/api/v1/payments").get_json()["payments"] == []
    Payment.update(updated_at=utcnow() - dt.timedelta(seconds=6)).where(Payment.id == p.id).execute()
    assert [x["ref"] for x in api.get("/api/v1/payments").get_json()["payments"]] == ["PAY-lagged"]


def test_batch_upserts_are_all_or_nothing_with_errors_by_index(app, api, client):
    body = {"customers": [{"account_number": f"B-{n}", "name": f"Batch {n}", "zip": "78701"} for n in range(300)]}
    r = client.post("/api/v1/customers?dry_run=1", json=body, headers=api.headers)
    assert r.status_code == 200 and r.get_json()["created"] == 300 and r.get_json()["dry_run"] is True
    assert Customer.select().count() == 0
    r = api.post("/api/v1/customers", body)
    assert r.status_code == 200 and r.get_json()["created"] == 300
    again = api.post("/api/v1/customers", body).get_json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 300)
    assert again["message"].startswith("Nothing to change")

    invoices = [{"invoice_number": f"BI-{n}", "account_number": f"B-{n}", "issue_date": "2026-01-01",
                 "due_date": "2026-01-21", "amount_cents": 4000 + n} for n in range(300)]
    bad = invoices + [{"invoice_number": "BI-X", "account_number": "B-1", "issue_date": "2026-13-01",
                       "due_date": "2026-01-21", "amount": "12.00"},
                      {"invoice_number": "BI-Y", "account_number": "nobody", "issue_date": "2026-01-01",
                       "due_date": "2026-01-21", "amount": 5}]
    r = api.post("/api/v1/invoices", {"invoices": bad})
    assert r.status_code == 422
    assert {(e["index"], e["field"]) for e in r.get_json()["errors"]} == {(301, "amount")}  # types first
    bad[301]["amount"] = "5.00"
    r = api.post("/api/v1/invoices", {"invoices": bad})
    assert r.status_code == 422
    assert {(e["index"], e["field"]) for e in r.get_json()["errors"]} == {(300, "issue_date")}
    assert Invoice.select().count() == 0
    r = api.post("/api/v1/invoices", {"invoices": invoices})
    assert r.status_code == 200 and r.get_json()["created"] == 300
    assert Invoice.get(Invoice.number == "BI-7").total_cents == 4007
    assert api.post("/api/v1/invoices", {"invoices": []}).status_code == 400
    assert api.post("/api/v1/invoices", {"rows": invoices}).status_code == 400
    assert client.post("/api/v1/invoices", json={"invoices": invoices}).status_code == 401
