"""Issue 17: the rough edges of a first walk through the portal, through HTTP (the browser walks are in
tests/test_browser_first_walk.py)."""
import datetime as dt
import re

import pytest

from billing import accounts
from db.models import Payment
from tests.factories import make_invoice
from tests.test_pay_flow import ACH_OK, BILLING, GOOD_CARD, pay_at_processor, ref_of, start
from views.sandbox import tick

TODAY = dt.date.today()
TAB = {"X-Payments-Tab": "1"}


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def day(d):
    return d.strftime("%b %-d, %Y")


def pay_ach(portal, amount, account="000123456789"):
    """An ACH debit through the sandbox's same-tab page, back on the portal: processing."""
    ref = ref_of(start(portal, amount, method_type="ach"))
    entry = portal.post(f"/payments/{ref}/billing", BILLING).location
    pay_at_processor(portal, entry, {**ACH_OK, "account": account})
    portal.get(f"/payments/{ref}")
    return ref


def entry_of(html):
    return re.search(r'href="(/sandbox/pay/[^"]+mode=page[^"]*)"', html).group(1).replace("&amp;", "&")


# --- 1. The result and the history in the same response. -----------------------------------------


def test_the_result_step_on_the_payments_tab_carries_the_updated_history(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00"))
    step = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True, headers=dict(TAB)).get_data(as_text=True)
    assert 'id="pay-history"' not in step  # still waiting: nothing below has changed yet
    pay_at_processor(logged_in, entry_of(step), GOOD_CARD)
    html = logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True,
                         headers=dict(TAB)).get_data(as_text=True)
    assert "Payment was successful" in html
    history = html[html.index('<div id="pay-history" hx-swap-oob="true">'):]
    assert ref in history and "Succeeded" in history and "No payments yet" not in history
    assert '<div id="pay-in-flight" hx-swap-oob="true">' in html


def test_the_result_step_outside_the_payments_tab_sends_no_out_of_band_parts(logged_in, customer):
    inv = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00", invoice_id=str(inv.id)))
    step = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True).get_data(as_text=True)
    pay_at_processor(logged_in, entry_of(step), GOOD_CARD)
    html = logged_in.get(f"/payments/{ref}/status", htmx=True).get_data(as_text=True)
    assert "Payment was successful" in html and "hx-swap-oob" not in html


# --- 2 and 3. Home's dates: the next future due date, overdue with its date, settling is not overdue. --


def test_home_shows_the_next_future_due_date_and_overdue_money_with_its_date(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY - dt.timedelta(days=40))
    make_invoice(customer, 1500, due=TODAY - dt.timedelta(days=10))
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=12))
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=42))
    page = text(logged_in.get("/").get_data(as_text=True))
    assert f"Next due date {day(TODAY + dt.timedelta(days=12))}" in page
    assert f"Overdue $40.00 due {day(TODAY - dt.timedelta(days=40))}" in page


def test_an_invoice_due_today_is_due_not_overdue(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY)
    page = text(logged_in.get("/").get_data(as_text=True))
    assert f"Next due date {day(TODAY)}" in page and "Overdue" not in page


def test_with_only_overdue_money_nothing_else_is_due(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY - dt.timedelta(days=3))
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Next due date Nothing else due" in page and "Overdue $25.00" in page


def test_money_settling_for_an_overdue_invoice_is_processing_not_overdue(app, logged_in, customer):
    old = make_invoice(customer, 6499, due=TODAY - dt.timedelta(days=10))
    make_invoice(customer, 6499, due=TODAY + dt.timedelta(days=20))
    ref = pay_ach(logged_in, "64.99")
    assert Payment.get(Payment.ref == ref).status == "processing"
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Processing $64.99" in page and "Overdue" not in page
    assert f"Next due date {day(TODAY + dt.timedelta(days=20))}" in page
    invoice = text(logged_in.get(f"/invoices/{old.id}").get_data(as_text=True))
    assert "Pending" in invoice and "Overdue" not in invoice
    assert accounts.summary(customer.id).overdue_cents == 0
    tick(app, force=True)  # it settles: paid, and still not overdue
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Overdue" not in page and "Processing" not in page


def test_a_failed_debit_makes_the_money_overdue_again(app, logged_in, customer):
    make_invoice(customer, 6499, due=TODAY - dt.timedelta(days=10))
    ref = pay_ach(logged_in, "64.99", account="000111111116")
    tick(app, force=True)
    assert Payment.get(Payment.ref == ref).status == "failed"
    assert f"Overdue $64.99 due {day(TODAY - dt.timedelta(days=10))}" in text(logged_in.get("/").get_data(as_text=True))


# --- 5. Only attempts that still need the customer are offered to continue. ------------------------


def test_a_processing_debit_is_shown_but_not_offered_to_continue(logged_in, customer):
    make_invoice(customer, 6499, due=TODAY + dt.timedelta(days=10))
    waiting = ref_of(start(logged_in, "10.00"))
    logged_in.post(f"/payments/{waiting}/billing", BILLING)
    ach = pay_ach(logged_in, "20.00")
    html = logged_in.get("/payments").get_data(as_text=True)
    notices = html[html.index('id="pay-in-flight"'):html.index('id="pay-step"')]
    lines = {ref: line for line in notices.split("</p>") for ref in (waiting, ach) if ref in line}
    assert "Continue this payment" in lines[waiting]
    assert "Processing" in lines[ach] and "Continue this payment" not in lines[ach] and "See it" in lines[ach]


# --- 4. The saved methods offered follow the payment type. -----------------------------------------


def _saved(customer, method_type, brand, last4):
    from db.models import PaymentMethod

    return PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref=f"pm_sbx_{brand}{last4}",
                                method_type=method_type, brand=brand, last4=last4, exp_month=12, exp_year=2034)


def test_a_saved_card_with_ach_is_refused_naming_the_clash_and_nothing_stays_chosen(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    card = _saved(customer, "card", "Visa", "4242")
    resp = start(logged_in, "30.00", method_type="ach", saved_method=str(card.id))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and Payment.select().count() == 0
    assert ("You chose to pay by ACH (bank account), but your saved card Visa ending 4242 is a card. "
            "Choose a saved bank account, or a new one.") in html
    assert 'name="method_type" value="ach" checked' in html
    assert 'name="saved_method" value="new" checked' in html
    assert f'value="{card.id}" checked' not in html


def test_someone_elses_saved_method_is_refused_without_naming_it(logged_in, customer):
    from tests.factories import make_customer

    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    other = _saved(make_customer(), "card", "Visa", "1881")
    html = start(logged_in, "30.00", method_type="card", saved_method=str(other.id)).get_data(as_text=True)
    assert "Choose one of your saved methods, or a new one." in html and "1881" not in html


def test_saved_methods_carry_their_type_for_the_page_to_follow(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    card = _saved(customer, "card", "Visa", "4242")
    bank = _saved(customer, "ach", "Sandbox Bank", "6789")
    html = logged_in.get("/payments").get_data(as_text=True)
    assert re.search(rf'data-type="card"[^>]*><input [^>]*name="saved_method" value="{card.id}"', html)
    assert re.search(rf'data-type="ach"[^>]*><input [^>]*name="saved_method" value="{bank.id}"', html)


# --- 10. A hidden tab's pages answer 404, not only its link. -------------------------------------


def _untick(app, *flags):
    from db import write_tx
    from db.models import Isp

    with write_tx():
        Isp.update({getattr(Isp, f): False for f in flags}).execute()


@pytest.mark.parametrize("flag,paths", [
    ("show_statement", ["/statement", "/statement?start=2026-01-01&end=2026-02-01"]),
    ("show_invoices", ["/invoices", "/invoices?page=2", "/invoices/{inv}"]),
    ("show_payments", ["/payments"]),
])
def test_a_hidden_tabs_pages_answer_404_and_its_links_go(app, logged_in, customer, flag, paths):
    inv = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    for path in paths:
        assert logged_in.get(path.format(inv=inv.id)).status_code == 200
        assert logged_in.get(path.format(inv=inv.id), htmx=True).status_code == 200
    _untick(app, flag)
    for path in paths:
        assert logged_in.get(path.format(inv=inv.id)).status_code == 404, path
        assert logged_in.get(path.format(inv=inv.id), htmx=True).status_code == 404, path
    home = logged_in.get("/").get_data(as_text=True)
    hidden = {"show_statement": '"/statement"', "show_invoices": '"/invoices"', "show_payments": '"/payments"'}[flag]
    assert f"href={hidden}" not in home


def test_with_payments_hidden_an_invoice_can_still_be_paid_and_links_lead_to_invoices(app, logged_in, customer):
    inv = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    _untick(app, "show_payments")
    assert logged_in.get(f"/invoices/{inv.id}/pay").status_code == 200
    ref = ref_of(start(logged_in, "30.00", invoice_id=str(inv.id)))
    billing = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert f'href="/invoices/{inv.id}/pay">Change</a>' in billing
    resp = logged_in.post(f"/payments/{ref}/cancel")
    assert resp.status_code == 303 and resp.location == "/invoices"
    assert 'href="/invoices">Start a new payment</a>' in logged_in.get(f"/payments/{ref}").get_data(as_text=True)


def test_hiding_the_statement_in_settings_makes_it_404(app, portal, customer):
    from tests.staff_support import STAFF_PASSWORD, make_staff
    from tests.test_staff_pages import GOOD

    make_staff("boss@isp.example.test")
    portal.login("boss@isp.example.test", STAFF_PASSWORD)
    assert portal.post("/staff/settings", GOOD).status_code == 303  # GOOD leaves show_statement unticked
    portal.post("/logout")
    portal.login(customer.email)
    assert portal.get("/statement").status_code == 404
    assert portal.get("/invoices").status_code == 200


# --- 6. Pay-by-link asks only what the processor needs, keeps the file private, and may pay part. ----


def _link(app, invoice):
    from billing import paylinks

    return paylinks.make(app.config["SECRET_KEY"], invoice.id)


def _key(html):
    return re.search(r'name="key" value="([^"]+)"', html).group(1)


@pytest.fixture
def filed(app):
    """A customer whose file the ISP filled in, and an invoice of theirs."""
    from tests.factories import make_customer

    c = make_customer(name="Rosa Filed", street="7 Quiet Ln", city="Wimberley", state="TX", zip="78676",
                      phone="512-555-0177", email="rosa.filed@example.test")
    return c, make_invoice(c, 6499, due=TODAY + dt.timedelta(days=9), number="INV-LINK-1")


def test_a_card_by_link_asks_no_billing_fields_and_uses_the_file_without_showing_it(app, client, filed):
    from tests.factories import PASSWORD  # noqa: F401  (no login happens here)
    from db.models import Outbox
    from tests.test_pay_flow import pay_at_processor as pay
    from tests.factories import Portal

    c, inv = filed
    portal = Portal(client)
    token = _link(app, inv)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    started = portal.post(f"/paylink/{token}", {"method_type": "card", "key": _key(page), "amount": "64.99"})
    billing = portal.get(started.location).get_data(as_text=True)
    assert "Billing Information" in billing and "Make Payment" in billing
    assert not re.search(r'<input (?![^>]*type="hidden")', billing), "a card by link asks nothing here"
    for private in ("Rosa", "Quiet", "Wimberley", "78676", "0177", "rosa.filed@example.test", c.account_number):
        assert private not in billing
    assert "r\u2022\u2022\u2022@example.test" in billing  # where the receipt goes, masked
    made = portal.post(started.location, {})
    assert made.status_code == 303 and "/sandbox/pay/" in made.location
    p = Payment.get(Payment.customer == c.id)
    assert (p.billing_street, p.billing_city, p.billing_state, p.billing_zip) == ("7 Quiet Ln", "Wimberley", "TX",
                                                                                  "78676")
    assert p.billing_name == "" and p.billing_email == ""  # never put into a page the link reaches
    entry = portal.get(made.location).get_data(as_text=True)
    assert "Rosa" not in entry and "78676" not in entry
    pay(portal, made.location, GOOD_CARD)
    portal.get(started.location)
    assert Payment.get_by_id(p.id).status == "succeeded"
    assert Outbox.select().where(Outbox.to_addr == "rosa.filed@example.test").count() >= 1  # the receipt


def test_stripe_bank_debit_by_link_asks_the_holders_name_and_email_only(app, filed):
    from billing import paylinks, payments
    from billing.processors.sandbox import SandboxProcessor
    from billing.processors.stripe import StripeProcessor

    c, inv = filed
    stripe, sandbox = StripeProcessor("sk_test_x", "pk_test_x", "whsec_x"), SandboxProcessor("w")
    assert paylinks.asked_fields(stripe, "ach") == ("name", "email")  # what Stripe declares, not its name
    assert paylinks.asked_fields(stripe, "card") == () == paylinks.asked_fields(sandbox, "ach")
    with pytest.raises(payments.FormErrors) as e:
        paylinks.billing_for(c, {"name": "", "email": "nope"}, stripe, "ach")
    assert set(e.value.errors) == {"name", "email"}
    data = paylinks.billing_for(c, {"name": "Pat Holder", "email": "pat@example.test", "street": "forged"},
                                stripe, "ach")
    assert data["name"] == "Pat Holder" and data["email"] == "pat@example.test" and data["street"] == "7 Quiet Ln"


@pytest.mark.parametrize("amount,message", [
    ("64.99", None), ("20.00", None), ("65.00", "This link pays this invoice only: at most $64.99."),
    ("0.50", "The minimum payment is $1.00."), ("abc", None),
])
def test_a_pay_link_may_pay_part_of_the_invoice_down_to_the_minimum(app, client, filed, amount, message):
    from tests.factories import Portal

    c, inv = filed
    portal = Portal(client)
    token = _link(app, inv)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert 'id="amount"' in page and 'value="64.99"' in page
    resp = portal.post(f"/paylink/{token}", {"method_type": "card", "key": _key(page), "amount": amount})
    if amount == "abc":
        assert resp.status_code == 422 and 'id="amount-error"' in resp.get_data(as_text=True)
    elif message:
        assert resp.status_code == 422 and message in resp.get_data(as_text=True)
        assert Payment.select().count() == 0
    else:
        assert resp.status_code == 303
        p = Payment.get(Payment.customer == c.id)
        assert p.amount_cents == int(amount.replace(".", "")) and p.target_invoice_id == inv.id


def test_when_the_minimum_is_the_whole_balance_the_link_pays_it_all(app, client, filed):
    from db import write_tx
    from db.models import Isp
    from tests.factories import Portal

    c, inv = filed
    with write_tx():
        Isp.update(min_payment_cents=6499).execute()
    portal = Portal(client)
    token = _link(app, inv)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert 'id="amount"' not in page and "$64.99" in page
    resp = portal.post(f"/paylink/{token}", {"method_type": "card", "key": _key(page), "amount": "1.00"})
    assert resp.status_code == 303 and Payment.get(Payment.customer == c.id).amount_cents == 6499


# --- 8. Logging out with the payment window open. -----------------------------------------------------


def test_pay_after_logging_out_says_signed_out_and_links_to_sign_in_and_resume(logged_in, customer):
    from urllib.parse import parse_qs, urlsplit

    from db.models import SandboxIntent

    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00"))
    entry = logged_in.post(f"/payments/{ref}/billing", BILLING).location
    page = logged_in.get(entry).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    logged_in.post("/logout")
    q = {k: v[0] for k, v in parse_qs(urlsplit(entry).query).items()}
    resp = logged_in.post(urlsplit(entry).path, {**q, **GOOD_CARD, "csrf_token": token}, csrf=False)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "You signed out, so the payment was not made" in html and "This form has expired" not in html
    assert f'href="/login?next=/payments/{ref}"' in html.replace("%2F", "/")
    assert Payment.get(Payment.ref == ref).status == "awaiting_details"
    assert SandboxIntent.get(SandboxIntent.id == Payment.get(Payment.ref == ref).processor_ref).status \
        == "requires_payment_method"
    # signing in again leads back to the same payment, still waiting for its details
    logged_in.login(customer.email)
    resumed = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Make the payment" in resumed


def test_an_expired_pay_link_window_form_does_not_talk_of_signing_out(app, client, filed):
    from tests.factories import Portal

    c, inv = filed
    portal = Portal(client)
    token = _link(app, inv)
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    started = portal.post(f"/paylink/{token}", {"method_type": "card", "key": _key(page), "amount": "64.99"})
    entry = portal.post(started.location, {}).location
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(entry).query).items()}
    resp = portal.post(urlsplit(entry).path, {**q, **GOOD_CARD, "csrf_token": "stale"}, csrf=False)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "This payment form has expired" in html and "signed out" not in html
    assert f'href="{started.location}"' in html


# --- 9. The login page wears the ISP's branding, within its weight budget. ---------------------------


def test_the_login_page_carries_the_logo_and_accent_within_its_budget(app, client):
    from bench import flow
    from billing import settings
    from db import write_tx
    from db.models import Isp
    from tests.test_budgets import LOGIN_PAGE_BYTES

    with write_tx():
        Isp.update(accent_color="#2a7a3b").execute()
    from tests.test_browser_first_walk import rgba_png

    logo = rgba_png(96, 32, (0x2a, 0x7a, 0x3b, 255))
    settings.save_logo(logo)
    walk = flow.login_page(client)
    page, *images = walk.hits
    assert page.bytes <= LOGIN_PAGE_BYTES, page.bytes  # what must arrive before the first render
    assert [h.url.split("/")[1] for h in images] == ["logo"]  # the only other request: the logo, not blocking
    assert walk.bytes <= LOGIN_PAGE_BYTES, walk.bytes  # a typical small logo keeps the whole page in budget
    html = flow._decoded(client.get("/login", headers={"Accept-Encoding": flow.ACCEPT_ENCODING}))
    assert ":root{--accent:#2a7a3b}" in html and 'class="logo"' in html and "<script" not in html
    r = client.get(images[0].url)
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"


# --- 11. Words. ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts,days,words", [
    (3, 3, "Test ISP may try again up to 2 more times, 3 days apart"),
    (2, 1, "Test ISP may try once more, 1 day later"),
    (1, 3, "Test ISP will not try again by itself"),
])
def test_the_autopay_terms_say_the_retries_with_the_right_plural(app, attempts, days, words):
    from billing import autopay

    autopay.set_policy(max_attempts=attempts, retry_days=days)
    text = autopay.authorization_text()
    assert f"If a charge fails, {words}, and will email me each time." in text and "(s)" not in text


def test_the_sandbox_names_its_own_test_bank(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = pay_ach(logged_in, "30.00")
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Sandbox Test Bank ending 6789" in page and "STRIPE" not in page


def test_a_pending_card_payment_reads_card_not_card_in_capitals(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00"))
    logged_in.post(f"/payments/{ref}/billing", BILLING)
    history = logged_in.get("/payments").get_data(as_text=True)
    history = history[history.index('id="pay-history"'):]
    assert re.search(rf"{ref}</a></td><td[^>]*>Card</td>", history), history
    assert ">CARD<" not in history


def test_an_ach_debit_with_no_invoice_to_pay_does_not_point_at_invoices_below(app, logged_in, customer):
    ref = pay_ach(logged_in, "30.00")  # nothing owed: a prepayment (the test ISP allows $200)
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Your bank payment is processing" in page
    assert "below" not in text(page) and "It goes to your account credit when it clears." in page


def test_an_ach_debit_for_invoices_says_they_are_listed_below(logged_in, customer):
    inv = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = pay_ach(logged_in, "30.00")
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "The invoices it pays, listed below, show it as pending" in page and inv.number in page


def test_settings_saved_is_a_success_box_not_a_warning(app, portal):
    from tests.staff_support import STAFF_PASSWORD, make_staff

    make_staff("boss2@isp.example.test")
    portal.login("boss2@isp.example.test", STAFF_PASSWORD)
    html = portal.get("/staff/settings?saved=1").get_data(as_text=True)
    assert '<p class="success" role="status" id="settings-saved">Settings saved.</p>' in html


def test_demo_payments_are_dated_in_their_billing_months(app, runner):
    from billing import demo
    from db.models import Invoice

    assert runner.invoke(args=["demo"]).exit_code == 0
    dated = list(Payment.select().where(Payment.status == "succeeded"))
    assert len(dated) == 3
    for p in dated:
        inv = Invoice.get_by_id(p.target_invoice_id)
        assert inv.issue_date <= p.created_at.date() <= max(inv.due_date, inv.issue_date), (inv.number, p.created_at)
        assert p.settled_at == p.created_at
    assert len({p.created_at.date() for p in dated}) == 3  # not all at load time
    assert demo.DEMO_EMAIL


# --- 12. Every README command runs as written; create-staff reads a piped password. -------------------


def test_create_staff_through_the_wrapper_reads_a_piped_password_without_an_echo_warning(tmp_path):
    import pathlib
    import subprocess

    from billing import identity
    from db import database, open_database

    root = pathlib.Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
           "SECRET_KEY": "cli-test-key", "SANDBOX_WEBHOOK_SECRET": "whsec_cli"}
    run = subprocess.run([str(root / "portal"), "create-staff", "piped@isp.example.test"], input="a piped password 1\n",
                         capture_output=True, text=True, env=env, timeout=120, stdin=None)
    assert run.returncode == 0, run.stderr
    assert "login created for piped@isp.example.test" in run.stdout
    assert "echo" not in run.stderr.lower() and "password" not in run.stderr.lower()
    database.close()
    open_database(env["DATABASE_URL"])
    assert identity.authenticate("piped@isp.example.test", "a piped password 1") is not None
    database.close()


def test_the_readme_runs_cli_tasks_through_the_wrapper_and_make(tmp_path):
    import pathlib
    import re as _re

    root = pathlib.Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    assert "flask --app app" not in readme.replace(".venv/bin/flask --app app", ""), "use ./portal in the README"
    commands = set(_re.findall(r"`\./portal ([a-z0-9-]+)", readme))
    from app import create_app

    known = set(create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
                            "SECRET_KEY": "k", "SANDBOX_WORKER": False}).cli.list_commands(None))
    assert commands - {"--help"} and commands - {"--help"} <= known, commands - known


# --- 14. Every email's HTML part has working links; the text part stays readable. ---------------------


def test_the_html_part_links_every_address_and_the_text_part_is_unchanged(app):
    from html.parser import HTMLParser

    from billing import mail
    from db import write_tx
    from db.models import Outbox

    text = ("Hello Ana,\n\nSet your password (the link works for 14 days):\nhttps://portal.example/invite/abc?x=1&y=2.\n\n"
            'Questions? See "https://help.example/faq" or call us.')
    with write_tx():
        row = mail.enqueue("ana@example.test", "Welcome", text, kind="invite")
    row = Outbox.get_by_id(row.id)
    assert row.text_body == text  # readable as written

    class Links(HTMLParser):
        links = []

        def handle_starttag(self, tag, attrs):
            if tag == "a":
                self.links.append(dict(attrs)["href"])

    parser = Links()
    parser.feed(row.html_body)
    assert parser.links == ["https://portal.example/invite/abc?x=1&y=2", "https://help.example/faq"]
    assert "<script" not in mail.simple_html("<script>https://x.example/</script>")


def test_a_sent_pay_link_email_has_a_working_link_in_its_html_part(app):
    from billing import paylinks
    from db.models import Outbox, Invoice, Customer
    from tests.factories import make_customer

    c = make_customer()
    inv = make_invoice(c, 3000)
    url = "http://127.0.0.1:5000/paylink/" + paylinks.make(app.config["SECRET_KEY"], inv.id)
    paylinks.email(Invoice.get_by_id(inv.id), Customer.get_by_id(c.id), url)
    row = Outbox.select().where(Outbox.kind == "paylink").get()
    assert f'<a href="{url}">{url}</a>' in row.html_body and url in row.text_body
