"""Pay-by-link: a signed, expiring link pays one invoice, without logging in, and shows nothing else."""
import re
import time
from urllib.parse import urlsplit

import pytest

from billing import accounts, paylinks
from db.models import Invoice, Payment
from tests.factories import TEST_CONFIG, make_customer, make_invoice
from tests.staff_support import last_link, staff  # noqa: F401

SECRET = TEST_CONFIG["SECRET_KEY"]
BILLING = {"name": "Ivy Lane", "street": "1 Elm St", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "ivy@example.test", "phone": "512-555-0100"}


def _legacy_token(secret, invoice_id, expires):
    """A link as made before itsdangerous: ``<id>.<expiry>.<HMAC>``, written out here on purpose."""
    import base64
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), f"paylink:{invoice_id}:{expires}".encode(), hashlib.sha256).digest()
    return f"{invoice_id}.{expires}.{base64.urlsafe_b64encode(mac[:20]).decode().rstrip('=')}"


def test_token_is_signed_and_expires(ledger_db):
    c = make_customer()
    inv = make_invoice(c, cents=4000)
    other = make_invoice(c, cents=100)
    token = paylinks.make(SECRET, inv.id)
    assert paylinks.invoice_for(SECRET, token).id == inv.id
    payload, sig = token.split(".")
    forged_payload = paylinks.make("attacker", other.id).split(".")[0]
    for forged in (f"{forged_payload}.{sig}", f"{payload}.{sig[:-2]}xx", f"{payload}x.{sig}", "garbage", "",
                   "a" * 5000):
        with pytest.raises(paylinks.LinkError, match="not valid"):
            paylinks.invoice_for(SECRET, forged)
    with pytest.raises(paylinks.LinkError, match="not valid"):
        paylinks.invoice_for("another-secret", token)
    with pytest.raises(paylinks.LinkError, match="expired"):
        paylinks.invoice_for(SECRET, token, now=time.time() + (paylinks.DEFAULT_DAYS + 1) * 86400)
    assert paylinks.invoice_for(SECRET, token, now=time.time() + (paylinks.DEFAULT_DAYS - 1) * 86400).id == inv.id
    Invoice.update(void=True).where(Invoice.id == inv.id).execute()
    with pytest.raises(paylinks.LinkError):
        paylinks.invoice_for(SECRET, token)


def test_links_keep_working_after_the_key_is_rotated(ledger_db):
    c = make_customer()
    inv = make_invoice(c, cents=4000)
    old = paylinks.make(paylinks.keys({"SECRET_KEY": "old-key"}), inv.id)
    rotated = paylinks.keys({"SECRET_KEY": "new-key", "SECRET_KEY_FALLBACKS": ["old-key"]})
    assert paylinks.invoice_for(rotated, old).id == inv.id
    new = paylinks.make(rotated, inv.id)
    assert paylinks.invoice_for("new-key", new).id == inv.id  # new links are signed with the new key
    with pytest.raises(paylinks.LinkError, match="not valid"):
        paylinks.invoice_for("old-key", new)
    with pytest.raises(paylinks.LinkError, match="not valid"):  # the old key dropped: its links stop
        paylinks.invoice_for(paylinks.keys({"SECRET_KEY": "new-key"}), old)


def test_links_made_before_itsdangerous_work_until_they_expire(ledger_db):
    c = make_customer()
    inv = make_invoice(c, cents=4000)
    legacy = _legacy_token("old-key", inv.id, int(time.time()) + 86400)
    rotated = paylinks.keys({"SECRET_KEY": "new-key", "SECRET_KEY_FALLBACKS": ["old-key"]})
    assert paylinks.invoice_for("old-key", legacy).id == inv.id
    assert paylinks.invoice_for(rotated, legacy).id == inv.id
    assert paylinks.expires_at(rotated, legacy) is not None
    with pytest.raises(paylinks.LinkError, match="not valid"):
        paylinks.invoice_for("new-key", legacy)
    invoice_id, expires, sig = legacy.split(".")
    with pytest.raises(paylinks.LinkError, match="not valid"):
        paylinks.invoice_for("old-key", f"{invoice_id}.{int(expires) + 999}.{sig}")
    with pytest.raises(paylinks.LinkError, match="expired"):
        paylinks.invoice_for("old-key", _legacy_token("old-key", inv.id, int(time.time()) - 1))


def test_after_a_key_rotation_old_links_open_and_bad_ones_get_a_clear_page(app, portal):
    c = make_customer()
    inv = make_invoice(c, cents=4000, number="ROT-1")
    old_link, legacy = paylinks.make(SECRET, inv.id), _legacy_token(SECRET, inv.id, int(time.time()) + 86400)
    expired = paylinks.make(SECRET, inv.id, days=-1)
    app.config.update(SECRET_KEY="a-brand-new-key", SECRET_KEY_FALLBACKS=[SECRET])
    for token in (old_link, legacy):
        page = portal.get(f"/paylink/{token}")
        assert page.status_code == 200 and "ROT-1" in page.get_data(as_text=True)
    payload, sig = old_link.split(".")
    for bad, words in ((f"{payload}.{sig[::-1]}", "not valid"), (expired, "expired"), ("1.2.3", "not valid"), ("%C3%A9t%C3%A9", "not valid")):
        page = portal.get(f"/paylink/{bad}")
        assert page.status_code == 410 and words in page.get_data(as_text=True)
    app.config.update(SECRET_KEY_FALLBACKS=[])
    assert portal.get(f"/paylink/{old_link}").status_code == 410


def test_secret_key_fallbacks_come_from_the_environment(monkeypatch, database_url):
    from app import create_app

    monkeypatch.setenv("SECRET_KEY_FALLBACKS", "older-key, oldest-key")
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    assert app.config["SECRET_KEY_FALLBACKS"] == ["older-key", "oldest-key"]
    assert paylinks.keys(app.config) == ["older-key", "oldest-key", SECRET]


def _pay_by_link(portal, token, card="4242 4242 4242 4242"):
    page = portal.get(f"/paylink/{token}")
    assert page.status_code == 200
    key = re.search(r'name="key" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    started = portal.post(f"/paylink/{token}", {"method_type": "card", "key": key})
    assert started.status_code == 303, started.get_data(as_text=True)
    pay_url = started.headers["Location"]
    billed = portal.post(pay_url, BILLING)
    assert billed.status_code == 303
    entry = billed.headers["Location"]
    assert "/sandbox/pay/" in entry
    parts = urlsplit(entry)
    form = dict(re.findall(r'name="(secret|mode|back)" value="([^"]*)"',
                           portal.get(entry).get_data(as_text=True)))
    done = portal.post(parts.path, {**form, "number": card, "expiry": "12 / 39", "cvc": "123", "zip": "78701"})
    assert done.status_code == 303 and done.headers["Location"].endswith(urlsplit(pay_url).path)
    return portal.get(pay_url)


def test_link_pays_that_invoice_without_logging_in_and_shows_nothing_else(app, portal):
    c = make_customer(name="Secret Name", street="99 Hidden Rd")
    older = make_invoice(c, cents=2500, number="OLD-1")
    inv = make_invoice(c, cents=4000, number="LINK-1")
    token = paylinks.make(SECRET, inv.id)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert "LINK-1" in page and "$40.00" in page
    for private in ("OLD-1", "Secret Name", "99 Hidden Rd", c.email, c.account_number, "$65.00"):
        assert private not in page
    result = _pay_by_link(portal, token)
    assert "Payment was successful" in result.get_data(as_text=True)
    views = {v.invoice.number: v for v in accounts.invoice_views(c.id)}
    assert views["LINK-1"].balance_cents == 0 and views["OLD-1"].balance_cents == 2500
    p = Payment.get()
    assert p.target_invoice_id == inv.id and p.amount_cents == 4000
    assert portal.get("/").status_code == 302  # still not logged in
    assert older  # untouched
    again = portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert "This invoice is paid" in again and "Continue" not in again


def test_link_cannot_reach_other_payments_and_bad_links_are_gone(app, portal):
    c = make_customer()
    a = make_invoice(c, cents=1000, number="A-1")
    b = make_invoice(c, cents=2000, number="B-1")
    token_a, token_b = paylinks.make(SECRET, a.id), paylinks.make(SECRET, b.id)
    page = portal.get(f"/paylink/{token_b}").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)
    ref_url = portal.post(f"/paylink/{token_b}", {"method_type": "card", "key": key}).headers["Location"]
    ref = ref_url.rsplit("/", 1)[1]
    assert portal.get(f"/paylink/{token_a}/{ref}").status_code == 404
    assert portal.get(f"/paylink/{token_b}/{ref}").status_code == 200
    expired = paylinks.make(SECRET, a.id, days=-1)
    assert portal.get(f"/paylink/{expired}").status_code == 410
    assert "expired" in portal.get(f"/paylink/{expired}").get_data(as_text=True)
    assert portal.get("/paylink/1.99999999999.forged").status_code == 410
    assert portal.post(f"/paylink/{expired}", {"method_type": "card"}).status_code == 410


def test_payment_types_offered_follow_the_settings(app, portal):
    from db.models import Isp
    Isp.update(accept_card=False).execute()
    c = make_customer()
    inv = make_invoice(c, cents=1000)
    token = paylinks.make(SECRET, inv.id)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert 'value="ach"' in page and 'value="card"' not in page
    resp = portal.post(f"/paylink/{token}", {"method_type": "card", "key": "k" * 20})
    assert resp.status_code == 422 and 'id="method_type-error"' in resp.get_data(as_text=True)


def test_staff_email_a_pay_link(app, staff):
    c = make_customer()
    inv = make_invoice(c, cents=1000, number="MAIL-1")
    resp = staff.post(f"/staff/invoices/{inv.id}/paylink", {"send": "1"})
    assert resp.status_code == 303
    assert f"MAIL-1 queued for {c.email}" in staff.get(resp.headers["Location"]).get_data(as_text=True)
    shown = staff.post(f"/staff/invoices/{inv.id}/paylink", {"send": "0"}).get_data(as_text=True)
    assert 'id="paylink-url"' in shown and "/paylink/" in shown
    path = last_link("paylink", to=c.email)
    staff.post("/logout", {})
    assert "MAIL-1" in staff.get(path).get_data(as_text=True)


def test_cli_prints_a_working_pay_link(app, runner, portal):
    c = make_customer()
    make_invoice(c, cents=1500, number="CLI-1")
    result = runner.invoke(args=["paylink", "CLI-1"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith(app.config["PUBLIC_URL"])
    assert "CLI-1" in portal.get(urlsplit(url).path).get_data(as_text=True)
    assert runner.invoke(args=["paylink", "NOPE"]).exit_code != 0
