"""A corpus of hostile inputs, each sent for real: the answer is always a 4xx (or a field error), never a 5xx,
and a refused request writes nothing. The same file runs on PostgreSQL (tests/test_hostile_postgres.py),
where a NUL byte or an over-long id used to reach the database and crash it.
"""
import io
import json

import pytest

from billing import payments
from db.models import Customer, Invoice
from tests.hostile_support import stored_digest, world  # noqa: F401  (fixture)

HUGE = "9" * 20  # above 2^63
BIG = str(2**63)  # one above the largest database integer
DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000
SURROGATE = '"\\ud800"'  # valid JSON text, but a lone surrogate once parsed


def _csv(rows):
    return (io.BytesIO(rows.encode("utf-8", "surrogatepass")), "hostile.csv")


def _customers_csv(name="Ana", account="H-1", extra=""):
    return _csv(f"account_number,name{extra and ',' + extra.split('=')[0]}\n{account},{name}"
                f"{extra and ',' + extra.split('=')[1]}\n")


def _invoices_csv(account, amount="10.00", issue="2026-01-01", due="2026-01-21", number="H-INV-1"):
    return _csv("invoice_number,account_number,issue_date,due_date,amount\n"
                f"{number},{account},{issue},{due},{amount}\n")


def corpus(w):
    """(label, who, method, url, keyword arguments) for every hostile input the issue lists, and more."""
    a_acct, b_inv = w.a.account_number, w.b_invoice.id
    cases = []

    def add(label, who, method, url, **kw):
        cases.append((label, who, method, url, kw))

    for who in ("anon", "customer", "staff"):
        add("unknown URL", who, "GET", "/no-such-page")
        add("favicon", who, "GET", "/favicon.ico")
        add("NUL in path", who, "GET", "/payments/%00")
        add("NUL in query", who, "GET", "/login?next=%00")
        add("newline in next", who, "GET", "/login?next=/%0d%0aSet-Cookie:%20x=1")
        add("wrong method", who, "PUT", "/login")
    for n in (HUGE, BIG, "0" * 5000 + "1", "1" + "0" * 5000):
        add(f"id {n[:12]} invoice", "customer", "GET", f"/invoices/{n}")
        add(f"id {n[:12]} pay", "customer", "GET", f"/invoices/{n}/pay")
        add(f"id {n[:12]} remove", "customer", "POST", f"/methods/{n}/remove", data={"password": "x"})
        add(f"id {n[:12]} default", "customer", "POST", f"/methods/{n}/default")
        add(f"id {n[:12]} staff customer", "staff", "GET", f"/staff/customers/{n}")
        add(f"id {n[:12]} staff invite", "staff", "POST", f"/staff/customers/{n}/invite")
        add(f"id {n[:12]} paylink", "staff", "POST", f"/staff/invoices/{n}/paylink")
        add(f"id {n[:12]} revoke", "staff", "POST", f"/staff/api-tokens/{n}/revoke")
        add(f"id {n[:12]} pay form invoice", "customer", "POST", "/pay",
            data={"amount": "10.00", "method_type": "card", "invoice_id": n, "saved_method": "new"})
        add(f"id {n[:12]} pay form method", "customer", "POST", "/pay",
            data={"amount": "10.00", "method_type": "card", "saved_method": n})
        add(f"id {n[:12]} autopay method", "customer", "POST", "/methods/autopay/on",
            data={"method": n, "accepted": "1", "password": "x"})
    for page in (HUGE, "-1", "0", "1e9", "９", BIG):
        add(f"page {page}", "customer", "GET", f"/invoices?page={page}")
        add(f"staff page {page}", "staff", "GET", f"/staff/customers?page={page}")
        add(f"audit page {page}", "staff", "GET", f"/staff/audit?page={page}")
    for d in ("9999-12-31", "0001-01-01", "2026-02-30", "99999-01-01", "2026-1-1"):
        add(f"statement {d}", "customer", "GET", f"/statement?start={d}&end={d}")
        add(f"statement to {d}", "customer", "GET", f"/statement?start=2026-01-01&end={d}")
        add(f"staff payments {d}", "staff", "GET", f"/staff/payments?start={d}&end={d}")
        add(f"staff csv {d}", "staff", "GET", f"/staff/payments.csv?start={d}&end={d}")
        add(f"import due {d}", "staff", "POST", "/staff/import",
            data={"kind": "invoices", "file": _invoices_csv(a_acct, due=d, issue="2026-01-01")})
        add(f"api due {d}", "api", "PUT", "/api/v1/invoices/H-API-1",
            json={"account_number": a_acct, "issue_date": "2026-01-01", "due_date": d, "amount": "1.00"})
    for amount in (HUGE, HUGE + ".00", "9" * 19, "99,999,999,999,999,999", "1e30", "NaN", "-0"):
        add(f"pay amount {amount}", "customer", "POST", "/pay",
            data={"amount": amount, "method_type": "card", "saved_method": "new"})
        add(f"settings amount {amount}", "staff", "POST", "/staff/settings",
            data={"name": "Test ISP", "min_payment": amount, "max_payment": amount, "allow_prepay": "1",
                  "max_prepay": amount, "accept_card": "1", "show_invoices": "1", "autopay_days_before_due": "0"})
        add(f"import amount {amount}", "staff", "POST", "/staff/import",
            data={"kind": "invoices", "file": _invoices_csv(a_acct, amount=amount)})
        add(f"api amount {amount}", "api", "PUT", "/api/v1/invoices/H-API-2",
            json={"account_number": a_acct, "issue_date": "2026-01-01", "due_date": "2026-01-21", "amount": amount})
    for cents in (10**20, 2**63, 2**63 - 1, 10**4300 if False else 10**300, -1, 1.5, True):
        add(f"api cents {str(cents)[:12]}", "api", "PUT", "/api/v1/invoices/H-API-3",
            json={"account_number": a_acct, "issue_date": "2026-01-01", "due_date": "2026-01-21",
                  "amount_cents": cents})
        add(f"api batch cents {str(cents)[:12]}", "api", "POST", "/api/v1/invoices",
            json={"invoices": [{"invoice_number": "H-B-1", "account_number": a_acct, "issue_date": "2026-01-01",
                                "due_date": "2026-01-21", "amount_cents": cents}]})
    for label, body in (("deep array", DEEP), ("deep object", DEEP_OBJECT), ("surrogate", '{"name": %s}' % SURROGATE),
                        ("surrogate key", '{%s: "x"}' % SURROGATE), ("NUL", '{"name": "a\\u0000b"}'),
                        ("not utf-8", b'{"name": "\xff"}'), ("huge int", '{"name": 1%s}' % ("0" * 5000))):
        raw = body if isinstance(body, bytes) else body.encode()
        add(f"api {label}", "api", "PUT", f"/api/v1/customers/{a_acct}", data=raw,
            content_type="application/json")
        add(f"api batch {label}", "api", "POST", "/api/v1/customers", data=raw, content_type="application/json")
        add(f"sandbox webhook {label}", "webhook", "POST", "/webhooks/sandbox", data=raw)
    add("api since huge id", "api", "GET", "/api/v1/payments?since=" + _cursor(HUGE))
    add("api limit huge", "api", "GET", f"/api/v1/payments?limit={HUGE}")
    add("api NUL account", "api", "GET", "/api/v1/customers/a%00b")
    add("api name newline", "api", "PUT", f"/api/v1/customers/{a_acct}", json={"name": "Ana\r\nBcc: x@evil.test"})
    add("import NUL", "staff", "POST", "/staff/import", data={"kind": "customers", "file": _customers_csv("A\x00na")})
    add("import newline name", "staff", "POST", "/staff/import",
        data={"kind": "customers", "file": _csv('account_number,name\nH-2,"Ana\r\nBcc: x@evil.test"\n')})
    add("import surrogate", "staff", "POST", "/staff/import",
        data={"kind": "customers", "file": _csv("account_number,name\nH-3,\udc80\n")})
    add("import not utf-8", "staff", "POST", "/staff/import",
        data={"kind": "customers", "file": (io.BytesIO(b"account_number,name\nH-4,\xff\xfe\n"), "x.csv")})
    add("settings newline name", "staff", "POST", "/staff/settings",
        data={"name": "ISP\r\nBcc: x@evil.test", "min_payment": "1.00", "accept_card": "1", "show_invoices": "1",
              "autopay_days_before_due": "0"})
    add("settings newline subject", "staff", "POST", "/staff/settings",
        data={"name": "ISP", "invite_subject": "Hi\nBcc: x@evil.test", "min_payment": "1.00", "accept_card": "1",
              "show_invoices": "1", "autopay_days_before_due": "0"})
    add("login NUL email", "anon", "POST", "/login", data={"email": "a\x00@example.test", "password": "x"})
    add("login NUL password", "anon", "POST", "/login", data={"email": w.a.email, "password": "pw\x00"})
    add("signup NUL", "anon", "POST", "/signup", data={"account_number": "A\x00", "zip": "7870\x00",
                                                        "email": "x@example.test"})
    add("reset NUL", "anon", "POST", "/reset", data={"email": "x\x00@example.test"})
    add("another's invoice", "customer", "GET", f"/invoices/{b_inv}")
    add("another's invoice pay", "customer", "POST", "/pay",
        data={"amount": "10.00", "method_type": "card", "invoice_id": str(b_inv), "saved_method": "new"})
    add("user agent NUL", "customer", "GET", "/", headers={"User-Agent": "x\x00y"})
    return cases


def _cursor(pid):
    import base64

    return base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{pid}".encode()).decode().rstrip("=")


def send(w, who, method, url, kw):
    """Send one request as ``who``; forms get a valid CSRF token so the hostile field is what is tested."""
    kw = dict(kw)
    if who == "api":
        return w.anon.client.open(url, method=method, headers=w.api_headers, **kw)
    if who == "webhook":
        from billing.processors.sandbox import SIGNATURE_HEADER

        return w.anon.client.open(url, method=method, content_type="application/json",
                                  headers={SIGNATURE_HEADER: w.sandbox_signature(kw["data"])}, **kw)
    portal = w.client(who)
    if method == "POST" and "content_type" not in kw:
        data = dict(kw.pop("data", {}))
        data.setdefault("csrf_token", portal.csrf())
        if url == "/pay":  # the amount step's own key, as the form carries it: else "this form has expired"
            data.setdefault("key", payments.new_idempotency_key())
        kw["data"] = data
    return portal.client.open(url, method=method, **kw)


def test_every_hostile_input_gets_a_4xx_or_a_field_error_and_refusals_write_nothing(app, world):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is answered 500, as in production, and listed below
    failures, sent = [], 0
    for label, who, method, url, kw in corpus(world):
        before = stored_digest()
        sent += 1
        try:
            resp = send(world, who, method, url, kw)
            resp.get_data()  # a streamed response (the CSV export) fails while it is read
        except Exception as e:  # noqa: BLE001 - every crash is listed, not just the first
            failures.append(f"{label}: crashed with {e!r:.200}")
            continue
        if resp.status_code >= 500:
            failures.append(f"{label}: {resp.status_code}")
        elif resp.status_code >= 400 and stored_digest() != before:
            failures.append(f"{label}: refused with {resp.status_code} but something was written")
    assert not failures, "\n".join(failures)
    assert sent > 150
    # Nothing hostile got in: no customer or invoice named by the corpus exists.
    assert not Customer.select().where(Customer.account_number.startswith("H-")).exists()
    assert not Invoice.select().where(Invoice.number.startswith("H-")).exists()
    print(f"hostile requests sent: {sent}, 5xx: 0")


def test_unknown_urls_get_the_portals_own_404_page_for_customers_too(app, world):
    resp = world.customer.get("/favicon.ico")
    assert resp.status_code == 404
    page = resp.get_data(as_text=True)
    assert "We could not find that page." in page and 'aria-label="Portal"' in page  # the layout, with its tabs


def test_ids_beyond_a_database_integer_are_404(app, world):
    assert world.customer.get(f"/invoices/{BIG}").status_code == 404
    assert world.customer.get(f"/invoices/{2**63 - 1}").status_code == 404  # in range, but nobody's
    assert world.customer.get(f"/invoices/{world.a_invoice.id}").status_code == 200


def test_nul_bytes_and_lone_surrogates_are_refused_at_the_edge_with_a_clear_message(app, world):
    resp = world.anon.post("/login", {"email": "a\x00b@example.test", "password": "x"})
    assert resp.status_code == 400 and "NUL" in resp.get_data(as_text=True)
    resp = world.anon.client.put(f"/api/v1/customers/{world.a.account_number}", headers=world.api_headers,
                                 data='{"name": "\\udfff"}', content_type="application/json")
    assert resp.status_code == 400 and "Unicode" in resp.get_json()["error"]
    resp = world.anon.client.put(f"/api/v1/customers/{world.a.account_number}", headers=world.api_headers,
                                 data=DEEP, content_type="application/json")
    assert resp.status_code == 400 and "nested" in resp.get_json()["error"]


def test_twenty_digit_amounts_are_field_errors(app, world):
    resp = send(world, "customer", "POST", "/pay",
                {"data": {"amount": "9" * 19, "method_type": "card", "saved_method": "new"}})
    assert resp.status_code == 422 and "at most $10,000,000.00" in resp.get_data(as_text=True)
    resp = send(world, "api", "PUT", "/api/v1/invoices/H-1", {"json": {
        "account_number": world.a.account_number, "issue_date": "2026-01-01", "due_date": "2026-01-21",
        "amount_cents": 10**20}})
    assert resp.status_code == 422 and "amount" in resp.get_json()["fields"]


def test_far_dates_are_field_errors(app, world):
    resp = world.customer.get("/statement?start=2026-01-01&end=9999-12-31")
    assert resp.status_code == 422 and "between 1970 and 2199" in resp.get_data(as_text=True)


def test_header_injection_through_names_is_refused_where_they_are_entered(app, world):
    resp = send(world, "api", "PUT", f"/api/v1/customers/{world.a.account_number}",
                {"json": {"name": "Ana\r\nBcc: victim@example.test"}})
    assert resp.status_code == 422 and "line" in resp.get_json()["fields"]["name"]
    assert Customer.get_by_id(world.a.id).name == world.a.name


def test_a_page_number_beyond_the_last_page_is_an_empty_page_not_a_crash(app, world):
    resp = world.customer.get(f"/invoices?page={HUGE}")
    assert resp.status_code == 200


@pytest.mark.parametrize("payload", [DEEP, '{"id": %s, "type": "x", "data": {"object": {"id": "x"}}}' % SURROGATE])
def test_a_signed_sandbox_webhook_with_hostile_json_is_a_400(app, world, payload):
    resp = send(world, "webhook", "POST", "/webhooks/sandbox", {"data": payload.encode()})
    assert resp.status_code == 400
    assert json.loads(resp.get_data())["error"]
