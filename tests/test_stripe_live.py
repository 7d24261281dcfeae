"""Opt-in: the portal's Stripe browser flows in real Chromium against Stripe's own test mode.

Runs only when STRIPE_TEST_SECRET_KEY (sk_test_ or rk_test_) and STRIPE_TEST_PUBLISHABLE_KEY (pk_test_) are set;
otherwise every test here is skipped, saying why. It is the localstripe suite's flows (tests/test_stripe_browser.py,
test_stripe_payments.py, test_stripe_methods.py) with Stripe's real Stripe.js, Card Element, 3-D Secure test page and
Financial Connections test bank, and Stripe's documented test values (https://docs.stripe.com/testing):

- a card payment (4242 4242 4242 4242);
- a 3-D Secure card payment (4000 0027 6000 3184: the bank's check every time), completed in the window;
- a card saved with consent at the billing step (4000 0025 0000 3155: checked on the first payment, not once saved)
  and then charged off-session by ``autopay``;
- ACH through Financial Connections' "Test Institution" (instant verification), and ACH entered by hand (routing
  110000000) verified with microdeposits through the portal's own form on the payment's page: 000123456789 pays,
  000222222227 fails after verification (insufficient funds);
- a refund, in part and then in full, by ``refund``.

Every run creates test-mode objects (Customers, PaymentIntents, PaymentMethods, refunds) in the Stripe account the
keys belong to; nothing is created in live mode, and live keys are refused.

Stripe cannot deliver webhooks to a portal on 127.0.0.1, so the tests move payments on by the portal's own paths:
the window's sync call, the payment page (which asks Stripe), and ``reconcile``. To exercise webhooks too, run
``stripe listen --forward-to http://127.0.0.1:$STRIPE_TEST_PORT/webhooks/stripe`` beside it and set
STRIPE_TEST_PORT and STRIPE_TEST_WEBHOOK_SECRET (the ``whsec_`` that ``stripe listen`` prints).

The payment window's weight (everything the pop-up transfers until Stripe's card field is ready: the portal's page
and script, Stripe.js and the Card Element's frame) is recorded and printed by the card payment test.

Stripe warns that its Financial Connections and 3-D Secure test screens change; the helpers below look for their
buttons by name in every frame and, when one is not there, fail naming the screen they were waiting for.
"""
import datetime as dt
import os
import re
import time

import pytest

SECRET = os.environ.get("STRIPE_TEST_SECRET_KEY", "").strip()
PUBLISHABLE = os.environ.get("STRIPE_TEST_PUBLISHABLE_KEY", "").strip()


def _why_not():
    if not SECRET or not PUBLISHABLE:
        return ("opt-in suite against Stripe's test mode: set STRIPE_TEST_SECRET_KEY and STRIPE_TEST_PUBLISHABLE_KEY "
                "(test keys) to run it; see the README, 'Going live with Stripe'")
    if not SECRET.startswith(("sk_test_", "rk_test_")):
        return "STRIPE_TEST_SECRET_KEY is not a test key (sk_test_… or rk_test_…); this suite never runs in live mode"
    if not PUBLISHABLE.startswith("pk_test_"):
        return "STRIPE_TEST_PUBLISHABLE_KEY is not a test key (pk_test_…); this suite never runs in live mode"
    return ""


WHY_NOT = _why_not()
pytestmark = [pytest.mark.stripe_live, pytest.mark.browser, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "-")]

BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
CARD_OK = "4242424242424242"
CARD_3DS_ALWAYS = "4000002760003184"  # the bank's check on every payment
CARD_3DS_SETUP = "4000002500003155"  # the check on-session; none off-session once set up for future use
ROUTING = "110000000"
ACCOUNT_OK = "000123456789"
ACCOUNT_FAILS = "000222222227"
MICRODEPOSITS = ("32", "45")
DESCRIPTOR_CODE = "SM11AA"
SETTLE_SECONDS = float(os.environ.get("STRIPE_TEST_SETTLE_SECONDS", "240"))  # a test-mode bank debit's wait
TODAY = dt.date.today()


# --- The portal against Stripe's test mode. ------------------------------------------------------------------


@pytest.fixture
def app(database_url):
    """The portal with Stripe as its processor, Stripe's own API and Stripe.js (overrides conftest's sandbox app)."""
    from app import create_app
    from db import database, migrate
    from db.models import Isp
    from tests.factories import TEST_CONFIG

    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url, "PAYMENT_PROCESSOR": "stripe",
                      "STRIPE_SECRET_KEY": SECRET, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE,
                      # Only used when `stripe listen` forwards events here; otherwise no event arrives.
                      "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_TEST_WEBHOOK_SECRET", "").strip()
                      or "whsec_unused_without_stripe_listen"})
    assert not app.extensions["processor"].live
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def live_server(app):
    """The portal over HTTP on 127.0.0.1: on STRIPE_TEST_PORT when set (for `stripe listen`), else any free port."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", int(os.environ.get("STRIPE_TEST_PORT") or 0), app, threaded=True)
    server.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)


@pytest.fixture
def stripe_api():
    """Stripe's API with the test key, for the tests to check what Stripe holds."""
    import stripe

    return stripe.StripeClient(SECRET, max_network_retries=2)


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def page_errors(page):
    """Uncaught errors in a page's own scripts (Stripe's frames log their own console messages; not counted)."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def reconcile(app):
    out = app.test_cli_runner().invoke(args=["reconcile", "--minutes", "0"])
    assert out.exit_code == 0, out.output
    return out.output


def settle(app, payment_id, wanted, seconds=SETTLE_SECONDS):
    """Run reconcile until the payment reaches one of ``wanted`` (a test-mode bank debit settles after a while)."""
    from db.models import Payment

    deadline = time.monotonic() + seconds
    while True:
        status = Payment.get_by_id(payment_id).status
        if status in wanted or time.monotonic() > deadline:
            return status
        reconcile(app)
        time.sleep(5)


# --- Stripe's frames: the Card Element, the 3-D Secure test page, Financial Connections. -----------------------


def in_frames(page, find, what, timeout=30.0):
    """The first visible element ``find(frame)`` gives in any frame of ``page`` (Stripe's are cross-origin and
    nested); fails naming ``what`` when none shows within ``timeout`` seconds."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in list(page.frames):
            try:
                loc = find(frame).first
                if loc.count() and loc.is_visible():
                    return loc
            except Error:  # a frame that navigated or went away meanwhile
                continue
        time.sleep(0.25)
    pytest.fail(f"{what}: not shown within {timeout:.0f} s (Stripe's test-mode screens may have changed)")


def button(name):
    rx = re.compile(name, re.I)
    return lambda f: f.get_by_role("button", name=rx).or_(f.get_by_role("link", name=rx))


def open_window(tab, page):
    """Make Payment; returns the pop-up once Stripe.js has mounted its card field."""
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = info.value
    expect()(popup.locator("#card-element iframe")).to_have_count(1, timeout=30000)
    return popup


def fill_card(popup, number):
    """Type a test card into Stripe's Card Element (its own frame; the postal code comes from the billing step)."""
    card = popup.frame_locator("#card-element iframe")
    field = card.locator('input[name="cardnumber"]')
    expect()(field).to_be_visible(timeout=30000)
    field.fill(number)
    card.locator('input[name="exp-date"]').fill(f"12{(TODAY.year + 3) % 100:02d}")
    card.locator('input[name="cvc"]').fill("123")
    postal = card.locator('input[name="postal"]')
    if postal.count() and postal.is_visible():
        postal.fill(BILLING["zip"])


def complete_3ds(popup):
    """Stripe's 3-D Secure test page, shown by Stripe.js in the window: Complete."""
    in_frames(popup, lambda f: f.locator("#test-source-authorize-3ds").or_(
        f.get_by_role("button", name=re.compile(r"^complete", re.I))), "3-D Secure test page ('Complete')").click()


def link_bank(popup, manual=None, timeout=90.0):
    """Financial Connections in the window: the "Test Institution" (instant), or with ``manual=(routing, account)``
    the numbers typed by hand (verified with microdeposits). Walks Stripe's screens until the window says linked."""
    popup.locator("#bank-link").click()
    linked = popup.locator("#bank-linked")
    deadline = time.monotonic() + timeout
    while not linked.is_visible():
        if time.monotonic() > deadline:
            pytest.fail("Financial Connections did not finish linking the test bank account "
                        "(Stripe's test-mode screens may have changed)")
        for frame in list(popup.frames):
            try:
                if _fc_step(frame, manual):
                    break
            except Exception:  # noqa: BLE001 - a frame that went away while we looked
                continue
        time.sleep(0.5)
    return linked.text_content()


def _visible(loc):
    loc = loc.first
    return bool(loc.count()) and loc.is_visible()


def _fc_step(frame, manual):
    """Do the one thing Financial Connections' current screen asks for; False when this frame shows none."""
    names = [r"^(done|back to )", r"^(connect|link) account", r"^agree", r"^continue$"]
    if manual:
        routing = frame.get_by_label(re.compile("routing", re.I))
        if _visible(routing):
            if not routing.first.input_value():
                routing.first.fill(manual[0])
                frame.get_by_label(re.compile(r"^account number", re.I)).first.fill(manual[1])
                confirm = frame.get_by_label(re.compile(r"confirm", re.I))
                if _visible(confirm):
                    confirm.first.fill(manual[1])
            names.insert(0, r"^(submit|continue|connect)")
        else:
            names.insert(2, r"manual")
    else:
        connect = frame.get_by_role("button", name=re.compile(r"^(connect|link) account", re.I))
        bank = frame.get_by_text("Test Institution", exact=True)
        if _visible(bank) and not _visible(connect):
            bank.first.click()
            return True
        account = frame.get_by_role("radio", name=re.compile("success", re.I)).or_(
            frame.get_by_role("checkbox", name=re.compile("success", re.I)))
        if _visible(account) and not account.first.is_checked():
            account.first.check()
            return True
    for name in names:
        loc = button(name)(frame)
        if _visible(loc) and loc.first.is_enabled():
            loc.first.click()
            return True
    return False


# --- The pay flow in the portal. -------------------------------------------------------------------------------


def to_billing(page, method_label, amount=None, save=False):
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    expect()(step.get_by_role("heading")).to_have_text("Choose your payment method")
    step.get_by_label(method_label).check()
    if amount:
        step.get_by_label("Amount").fill(amount)
    step.get_by_role("button", name="Continue").click()
    expect()(step.get_by_role("heading")).to_have_text("Billing Information")
    if save:
        step.get_by_label("Save this payment method to auto pay my invoices each month").check()


def expect_success(page, amount):
    step = page.locator("#pay-step")
    expect()(step.locator("h2")).to_have_text("Payment was successful", timeout=30000)
    expect()(step.locator("#pay-amount")).to_have_text(amount)


def window_weight(requests, popup):
    """Bytes the pop-up transferred (headers and encoded bodies, its frames included), split into the portal's own
    and everyone else's (Stripe's): [(url, bytes)] per side."""
    popup.wait_for_load_state("networkidle")
    own, others = [], []
    for request in requests:
        try:
            if request.frame.page != popup:
                continue
            sizes = request.sizes()
        except Exception:  # noqa: BLE001 - a request without a frame (a worker) or already gone
            continue
        n = sizes["responseHeadersSize"] + sizes["responseBodySize"]
        (own if request.url.startswith("http://127.0.0.1") else others).append((request.url, n))
    return own, others


@pytest.fixture
def account(app):
    from tests.factories import make_customer, make_invoice

    customer = make_customer()
    older = make_invoice(customer, cents=4000, due=TODAY - dt.timedelta(days=5))
    newer = make_invoice(customer, cents=6500, due=TODAY + dt.timedelta(days=25))
    return customer, older, newer


def test_card_payment_and_the_windows_weight(open_page, app, account, stripe_api, capsys, record_property):
    from db.models import Allocation, Payment

    customer, older, newer = account
    tab = open_page()
    finished = []
    tab.context.on("requestfinished", lambda request: finished.append(request))
    page = tab.login(customer.email)
    errors = page_errors(page)
    to_billing(page, "Credit / Debit Card", "50.00")
    popup = open_window(tab, page)
    errors += page_errors(popup)
    expect()(popup.locator("#stripe-amount")).to_have_text("$50.00")

    own, others = window_weight(finished, popup)
    total = sum(n for _, n in own + others)
    record_property("stripe_window_bytes", total)
    record_property("stripe_window_portal_bytes", sum(n for _, n in own))
    with capsys.disabled():
        print(f"\nStripe payment window, measured in test mode: {total:,} B in {len(own) + len(others)} requests "
              f"(portal {sum(n for _, n in own):,} B in {len(own)}; Stripe {sum(n for _, n in others):,} B in "
              f"{len(others)})")
        for url, n in sorted(others, key=lambda r: -r[1])[:8]:
            print(f"  {n:>9,} B  {url[:100]}")
    assert own and others  # the portal's page and script, and Stripe.js with its card frame

    fill_card(popup, CARD_OK)
    with popup.expect_event("close", timeout=60000):
        popup.get_by_role("button", name="Pay $50.00").click()
    expect_success(page, "$50.00")
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "succeeded"
    assert sorted(a.amount_cents for a in Allocation.select()) == [1000, 4000]
    pi = stripe_api.v1.payment_intents.retrieve(payment.processor_ref)
    assert pi.status == "succeeded" and pi.amount == 5000 and pi.metadata.to_dict() == {"payment_ref": payment.ref}
    assert not pi.livemode
    assert errors == []


def test_3d_secure_card_completes_its_check_in_the_window(open_page, app, account, stripe_api):
    from db.models import Payment

    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    errors = page_errors(page)
    to_billing(page, "Credit / Debit Card", "40.00")
    popup = open_window(tab, page)
    errors += page_errors(popup)
    fill_card(popup, CARD_3DS_ALWAYS)
    popup.get_by_role("button", name="Pay $40.00").click()
    check = in_frames(popup, lambda f: f.locator("#test-source-authorize-3ds").or_(
        f.get_by_role("button", name=re.compile(r"^complete", re.I))), "3-D Secure test page ('Complete')", 45)
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "awaiting_details"  # nothing taken before the bank's check
    with popup.expect_event("close", timeout=60000):
        check.click()
    expect_success(page, "$40.00")
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "succeeded"
    assert stripe_api.v1.payment_intents.retrieve(payment.processor_ref).status == "succeeded"
    assert errors == []


def test_a_card_saved_with_consent_is_charged_off_session_by_autopay(open_page, app, account, stripe_api):
    from db.models import AutopayCharge, AutopayEnrolment, Payment, PaymentMethod
    from tests.factories import make_invoice

    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    errors = page_errors(page)
    to_billing(page, "Credit / Debit Card", "40.00", save=True)
    popup = open_window(tab, page)
    errors += page_errors(popup)
    fill_card(popup, CARD_3DS_SETUP)
    popup.get_by_role("button", name="Pay $40.00").click()
    with popup.expect_event("close", timeout=60000):
        complete_3ds(popup)  # on-session, the bank checks this card; once saved, off-session it does not
    expect_success(page, "$40.00")
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    assert method.last4 == "3155" and AutopayEnrolment.get(AutopayEnrolment.customer == customer.id).enabled
    pm = stripe_api.v1.payment_methods.retrieve(method.processor_ref)
    stripe_customer = stripe_api.v1.payment_intents.retrieve(
        Payment.get(Payment.customer == customer.id).processor_ref).customer
    assert pm.customer == stripe_customer  # attached: consent given

    due = make_invoice(customer, cents=2500, due=TODAY)
    out = app.test_cli_runner().invoke(args=["autopay"])
    assert out.exit_code == 0 and "charged" in out.output, out.output
    charge = AutopayCharge.get(AutopayCharge.invoice == due.id)
    assert charge.status == "charged", (charge.status, charge.reason_code)
    payment = Payment.get_by_id(charge.payment_id)
    assert payment.status == "succeeded" and payment.payment_method_id == method.id
    pi = stripe_api.v1.payment_intents.retrieve(payment.processor_ref)
    assert pi.status == "succeeded" and pi.payment_method == method.processor_ref
    assert errors == []


def test_ach_with_the_financial_connections_test_bank(open_page, app, stripe_api):
    from db.models import Payment
    from tests.factories import make_customer, make_invoice

    customer = make_customer()
    make_invoice(customer, cents=4000, due=TODAY + dt.timedelta(days=5))
    tab = open_page()
    page = tab.login(customer.email)
    errors = page_errors(page)
    to_billing(page, "ACH (bank account)")
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = info.value
    errors += page_errors(popup)
    link_bank(popup)
    popup.get_by_label("I accept this authorization").check()
    with popup.expect_event("close", timeout=60000):
        popup.get_by_role("button", name="Pay $40.00").click()
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status in ("processing", "succeeded")
    assert settle(app, payment.id, ("succeeded", "failed")) == "succeeded"
    assert stripe_api.v1.payment_intents.retrieve(payment.processor_ref).status == "succeeded"
    page.goto(f"{tab.base_url}/payments/{payment.ref}")
    expect()(page.locator("#pay-step h2")).to_have_text("Payment was successful")
    assert errors == []


@pytest.mark.parametrize("account_number,outcome", [(ACCOUNT_OK, "succeeded"), (ACCOUNT_FAILS, "failed")],
                         ids=["pays", "insufficient-funds"])
def test_ach_entered_by_hand_is_verified_with_microdeposits_on_the_payments_page(open_page, app, stripe_api,
                                                                                account_number, outcome):
    from db.models import Payment
    from tests.factories import make_customer, make_invoice

    customer = make_customer()
    make_invoice(customer, cents=4000, due=TODAY + dt.timedelta(days=5))
    tab = open_page()
    page = tab.login(customer.email)
    errors = page_errors(page)
    to_billing(page, "ACH (bank account)")
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = info.value
    errors += page_errors(popup)
    link_bank(popup, manual=(ROUTING, account_number))
    popup.get_by_label("I accept this authorization").check()
    popup.get_by_role("button", name="Pay $40.00").click()
    expect()(popup.locator("#stripe-message")).to_contain_text("two small deposits", timeout=30000)
    popup.close()

    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "awaiting_verification"
    page.goto(f"{tab.base_url}/payments/{payment.ref}")
    expect()(page.locator("#pay-step h2")).to_have_text("Verify your bank account to finish this payment")
    form = page.locator("#verify")
    expect()(form).to_have_attribute("action", f"/payments/{payment.ref}/verify")
    if form.locator("#descriptor_code").count():  # Stripe chose a code in the statement descriptor
        form.get_by_label("Code from the deposit").fill(DESCRIPTOR_CODE)
    else:
        form.get_by_label("First deposit").fill(MICRODEPOSITS[0])
        form.get_by_label("Second deposit").fill(MICRODEPOSITS[1])
    form.get_by_role("button", name="Verify and pay $40.00").click()
    expect()(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing", timeout=30000)
    assert Payment.get_by_id(payment.id).status in ("processing", outcome)

    assert settle(app, payment.id, ("succeeded", "failed")) == outcome
    assert stripe_api.v1.payment_intents.retrieve(payment.processor_ref).status == (
        "succeeded" if outcome == "succeeded" else "requires_payment_method")
    assert errors == []


def test_refund_in_part_then_in_full(open_page, app, account, stripe_api):
    from db.models import Payment

    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    to_billing(page, "Credit / Debit Card", "30.00")
    popup = open_window(tab, page)
    fill_card(popup, CARD_OK)
    with popup.expect_event("close", timeout=60000):
        popup.get_by_role("button", name="Pay $30.00").click()
    expect_success(page, "$30.00")
    payment = Payment.get(Payment.customer == customer.id)
    runner = app.test_cli_runner()

    part = runner.invoke(args=["refund", payment.ref, "10.00"])
    assert part.exit_code == 0 and "$20.00 still refundable" in part.output, part.output
    full = runner.invoke(args=["refund", payment.ref])
    assert full.exit_code == 0, full.output
    reconcile(app)  # a refund Stripe answered "pending" is settled here
    assert Payment.get_by_id(payment.id).status == "refunded"
    refunds = stripe_api.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data
    assert sorted(r.amount for r in refunds) == [1000, 2000]
    assert all(r.status in ("succeeded", "pending") for r in refunds)
    page.goto(f"{tab.base_url}/payments/{payment.ref}")
    expect()(page.locator("body")).to_contain_text("Payment refunded")
