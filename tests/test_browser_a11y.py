"""Real Chromium: every customer page and pay step checked by axe-core at 320 px and 1280 px, with no sideways
scroll at 320 px, and a card payment done with the keyboard alone.

axe-core comes from npm into tests/tooling/ (``make test`` installs it; it is never served to customers). It is
injected through DevTools (``page.evaluate``), which runs outside the page's Content-Security-Policy.
"""
import datetime as dt
import pathlib
import re

import pytest

from billing import autopay
from db import write_tx
from db.models import PaymentMethod
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

AXE = pathlib.Path(__file__).parent / "tooling" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
VISA = "4242 4242 4242 4242"
THREE_DS = "4000 0027 6000 3184"
EXPIRY = f"12 / {(dt.date.today().year + 3) % 100:02d}"
PHONE = {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
BLOCK_POPUPS = "window.open = () => null"
# The walk sends wrong passwords and bad fields on purpose, and opens a missing page: Chromium logs those answers.
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: the server responded with a status of (401|404|422) ")


@pytest.fixture(scope="session")
def axe_source():
    if not AXE.exists():
        pytest.fail("axe-core is not installed: `make test` installs it into tests/tooling/ (npm)")
    return AXE.read_text()


class Auditor:
    """Runs axe-core and the overflow check on each state of a page, and keeps every problem found."""

    def __init__(self, source, width):
        self.source = source
        self.width = width
        self.problems = []
        self.states = 0

    def __call__(self, page, state):
        page.wait_for_load_state()
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(self.source)
        found = page.evaluate(
            """async (tags) => {
                const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, iframes: false});
                return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => `${v.impact} ${v.id}: ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
            }""", WCAG_TAGS)
        self.problems += [f"{state} @{self.width}px: {f}" for f in found]
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > self.width:
            wide = page.evaluate(
                """(w) => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)
                     .slice(0, 4).map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))""",
                self.width)
            self.problems.append(f"{state} @{self.width}px: scrolls sideways ({scroll}px wide: {wide})")
        self.states += 1


@pytest.fixture
def owing(app):
    """A customer with a paid, an overdue and an open invoice, a saved card that autopay uses, and a payment."""
    customer = make_customer(name="Ana María Reyes-Villanueva", street="12 Ranch Road 5 North, Unit 1400",
                             city="Dripping Springs")
    today = dt.date.today()
    make_invoice(customer, cents=4000, due=today - dt.timedelta(days=5), number="INV-2026-000101")
    make_invoice(customer, cents=6500, due=today + dt.timedelta(days=25), number="INV-2026-000102")
    with write_tx():
        card = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_a11y",
                                    method_type="card", brand="Visa", last4="4242", exp_month=12,
                                    exp_year=today.year + 3)
    autopay.turn_on(customer.id, card.id, accepted=True)
    return customer


def fill_card(frame, number=VISA):
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiry (MM / YY)").fill(EXPIRY)
    frame.get_by_label("CVC").fill("123")
    frame.get_by_label("ZIP").fill("78701")


def walk(tab, check, customer):
    """Visit every customer page and pay step, checking each state."""
    page = tab.page
    base = tab.base_url
    page.goto(base + "/login")
    check(page, "login")
    page.fill("#email", customer.email)
    page.fill("#password", "wrong password")
    page.click("button.primary")
    expect(page.locator("#login-error")).to_be_visible()
    check(page, "login error")
    for path in ("/signup", "/reset"):
        page.goto(base + path)
        check(page, path)
        page.get_by_role("button").last.click()
        check(page, f"{path} errors")
    tab.login(customer.email)
    check(page, "home")
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.locator("#invoices")).to_be_visible()
    check(page, "invoices")
    page.get_by_role("link", name="View Bills").first.click()
    expect(page.locator("#invoice")).to_be_visible()
    check(page, "invoice")
    page.get_by_role("link", name="Statement", exact=True).click()
    expect(page.locator("#statement")).to_be_visible()
    check(page, "statement")
    page.goto(base + "/statement?start=2026-02-31&end=nonsense")
    check(page, "statement errors")
    page.get_by_role("link", name="Payment methods", exact=True).click()
    expect(page.locator("#saved-methods")).to_be_visible()
    check(page, "payment methods")
    page.get_by_role("link", name="Remove").first.click()
    expect(page.get_by_label("Enter your password to confirm")).to_be_visible()
    check(page, "remove method")

    # The pay flow, with errors at each step, pop-ups blocked so the inline form shows.
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    expect(step).to_contain_text("Choose your payment method")
    check(page, "pay: choose method")
    step.get_by_label("Credit / Debit Card").check()
    step.get_by_label("A new card or bank account").check()
    step.get_by_label("Amount").fill("12.345")
    step.get_by_role("button", name="Continue").click()
    expect(step.locator(".error").first).to_be_visible()
    check(page, "pay: choose method errors")
    step.get_by_label("Amount").fill("50.00")
    step.get_by_role("button", name="Continue").click()
    expect(step).to_contain_text("Billing Information")
    check(page, "pay: billing information")
    step.get_by_label("Name").fill("")
    step.get_by_role("button", name="Make Payment").click()
    expect(step.locator(".error").first).to_be_visible()
    check(page, "pay: billing errors")
    step.get_by_label("Name").fill(customer.name)
    step.get_by_role("button", name="Make Payment").click()
    expect(page.locator("#pay-blocked")).to_be_visible()
    check(page, "pay: make the payment, pop-up blocked")

    # The processor's pop-up window, as a page of its own.
    window_url = page.locator("#pay-window").get_attribute("data-popup-url")
    sandbox = tab.context.new_page()
    sandbox.goto(base + window_url if window_url.startswith("/") else window_url)
    check(sandbox, "sandbox: card entry")
    sandbox.get_by_role("button", name="Pay").click()
    expect(sandbox.locator(".error").first).to_be_visible()
    check(sandbox, "sandbox: card entry errors")
    fill_card(sandbox, THREE_DS)
    sandbox.get_by_role("button", name="Pay").click()
    expect(sandbox.get_by_role("button", name="Complete authentication")).to_be_visible()
    check(sandbox, "sandbox: 3-D Secure challenge")
    sandbox.get_by_role("button", name="Complete authentication").click()
    expect(sandbox.locator("#sandbox-done")).to_be_visible()
    check(sandbox, "sandbox: done")
    sandbox.close()

    expect(step).to_contain_text("Payment was successful")
    check(page, "pay: result")
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.locator("#invoices .status", has_text="Paid").first).to_be_visible()
    check(page, "invoices with a paid one")
    page.get_by_role("link", name="Payments", exact=True).click()
    expect(page.locator("#payments table")).to_be_visible()
    check(page, "payments with history")
    page.get_by_role("radio", name="ACH (bank account)").check()
    page.get_by_role("radio", name="A new card or bank account").check()
    page.locator("#pay-step").get_by_role("button", name="Continue").click()
    expect(step).to_contain_text("Billing Information")
    step.get_by_role("button", name="Make Payment").click()
    expect(page.locator("#pay-blocked")).to_be_visible()
    window_url = page.locator("#pay-window a[data-pay-open]").first.get_attribute("href")
    page.goto(base + window_url if window_url.startswith("/") else window_url)
    check(page, "sandbox: bank account entry")
    assert page.goto(base + "/no-such-page").status == 404
    check(page, "not found")


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=["320px", "1280px"])
def test_every_customer_page_and_pay_step_passes_axe_and_fits_the_screen(open_page, owing, axe_source, device):
    tab = open_page(init_script=BLOCK_POPUPS, **device)
    check = Auditor(axe_source, device["viewport"]["width"])
    walk(tab, check, owing)
    assert check.states == 27
    assert not check.problems, "\n".join(check.problems)
    assert [e for e in tab.errors if not EXPECTED_REFUSAL.match(e)] == []


STAFF_PAGES = ("/staff/", "/staff/customers", "/staff/payments", "/staff/import", "/staff/settings",
               "/staff/staff", "/staff/api-tokens", "/staff/audit")


def test_staff_pages_fit_a_phone_and_pass_axe(open_page, owing, axe_source):
    from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff

    make_staff()
    tab = open_page(**PHONE)
    check = Auditor(axe_source, 320)
    page = tab.page
    page.goto(tab.base_url + "/login")
    page.fill("#email", STAFF_EMAIL)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button.primary")
    page.wait_for_url(tab.base_url + "/staff/")
    for path in STAFF_PAGES:
        assert page.goto(tab.base_url + path).status == 200, path
        check(page, path)
    page.get_by_role("link", name="Customers", exact=True).click()
    page.get_by_role("link", name=owing.account_number).click()
    check(page, "staff: customer")
    assert not check.problems, "\n".join(check.problems)
    assert tab.errors == []


def active(page):
    """What has focus: (tag, id, text), looking into a same-origin frame when the frame has it."""
    return tuple(page.evaluate("""() => {
        let e = document.activeElement;
        while (e && e.tagName === 'IFRAME' && e.contentDocument) e = e.contentDocument.activeElement;
        return [e.tagName, e.id, e.textContent.replace(/\\s+/g, ' ').trim().slice(0, 80)];
    }"""))


def focus_lands_on(page, tag, text=None, id_=None):
    """Wait until focus is on that element; say where it is instead when it never gets there."""
    try:
        page.wait_for_function("""([tag, text, id]) => {
            let e = document.activeElement;
            while (e && e.tagName === 'IFRAME' && e.contentDocument) e = e.contentDocument.activeElement;
            return e && e.tagName === tag && (text === null || e.textContent.trim().startsWith(text))
                && (id === null || e.id === id);
        }""", arg=[tag, text, id_], timeout=5000)
    except Exception:
        raise AssertionError(f"focus is on {active(page)}, not on {tag} {text or id_}") from None


def tab_to(page, tag, text=None, id_=None, limit=12):
    """Press Tab until that element has focus; returns how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        got = active(page)
        if got[0] == tag and (text is None or got[2].startswith(text)) and (id_ is None or got[1] == id_):
            return presses
    raise AssertionError(f"{tag} {text or id_} not reached in {limit} Tab presses (focus on {active(page)})")


def expect_announced(page, text):
    """The portal's live region says this (screen readers speak what changes in it)."""
    expect(page.locator("#announce[aria-live=polite]")).to_contain_text(text, ignore_case=True)


@pytest.fixture
def owes(app):
    customer = make_customer()
    make_invoice(customer, cents=4000, due=dt.date.today() - dt.timedelta(days=5))
    return customer


def test_a_card_payment_by_keyboard_alone_with_the_popup_blocked_puts_focus_on_each_new_step(open_page, owes):
    tab = open_page(init_script=BLOCK_POPUPS, **DESKTOP)
    page = tab.page
    page.goto(tab.base_url + "/login")
    tab_to(page, "INPUT", id_="email", limit=3)
    page.keyboard.type(owes.email)
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    page.wait_for_url(tab.base_url + "/")

    tab_to(page, "A", "Payments")
    page.keyboard.press("Enter")
    focus_lands_on(page, "H1", "Payments")
    expect_announced(page, "Payments")
    assert tab_to(page, "INPUT", limit=2) == 1  # the payment type, right after the heading
    page.keyboard.press("Space")
    assert tab_to(page, "BUTTON", "Continue", limit=4) <= 3
    page.keyboard.press("Enter")

    focus_lands_on(page, "H2", "Billing Information")
    expect_announced(page, "Billing Information")
    tab_to(page, "INPUT", id_="b-name", limit=2)
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    assert tab_to(page, "BUTTON", "Make Payment") <= 9
    page.keyboard.press("Enter")

    focus_lands_on(page, "DIV")  # the error summary, which links to the field
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect_announced(page, "Please correct this")
    expect(page.locator("#b-name")).to_have_attribute("aria-describedby", "name-error")
    tab_to(page, "A", limit=1)
    page.keyboard.press("Enter")
    focus_lands_on(page, "INPUT", id_="b-name")
    page.keyboard.type(owes.name)
    tab_to(page, "BUTTON", "Make Payment")
    page.keyboard.press("Enter")

    # The pop-up is blocked: the notice is announced and focus goes to the inline form's first field.
    expect(page.locator("#pay-blocked")).to_be_visible()
    focus_lands_on(page, "INPUT", id_="number")
    expect_announced(page, "blocked the payment window")
    page.keyboard.type(VISA)
    for value in (EXPIRY, "123", "78701"):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")

    focus_lands_on(page, "H2", "Payment was successful")
    expect_announced(page, "Payment was successful")
    assert [e for e in tab.errors if not EXPECTED_REFUSAL.match(e)] == []


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=["320px", "1280px"])
def test_in_spanish_every_customer_page_and_pay_step_passes_axe_and_fits_the_screen(open_page, owing, axe_source,
                                                                                    device):
    tab = open_page(init_script=BLOCK_POPUPS, locale="es-US", **device)  # the browser asks for Spanish
    check = Auditor(axe_source, device["viewport"]["width"])
    page, base = tab.page, tab.base_url
    page.goto(base + "/login")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    check(page, "es: login")
    tab.login(owing.email)
    for path in ("/", "/invoices", "/statement", "/methods", "/payments"):
        page.goto(base + path)
        check(page, f"es: {path}")
    page.goto(base + "/invoices")
    page.get_by_role("link", name="Ver facturas").first.click()
    expect(page.locator("#invoice")).to_be_visible()
    check(page, "es: invoice")
    # The language chooser follows htmx navigation: it returns to the invoice, not to the list first loaded.
    expect(page.locator("form.lang input[name=next]")).to_have_value(re.compile(r"^/invoices/\d+$"))
    page.get_by_role("link", name="Pagar ahora").first.click()
    step = page.locator("#pay-step")
    expect(step.get_by_role("heading")).to_have_text("Elija su método de pago")
    check(page, "es: choose method")
    step.get_by_label("Una tarjeta o cuenta bancaria nueva").check()
    step.get_by_role("button", name="Continuar").click()
    expect(step.get_by_role("heading")).to_have_text("Información de facturación")
    check(page, "es: billing information")
    step.get_by_role("button", name="Realizar pago").click()
    expect(page.locator("#pay-blocked")).to_contain_text("Su navegador bloqueó la ventana de pago")
    check(page, "es: make the payment, pop-up blocked")
    window = tab.context.new_page()
    window.goto(base + page.locator("#pay-window").get_attribute("data-popup-url"))
    check(window, "es: sandbox card entry")
    window.get_by_label("Número de tarjeta").fill(VISA)
    window.get_by_label("Vencimiento (MM / AA)").fill(EXPIRY)
    window.get_by_label("CVC").fill("123")
    window.get_by_label("Código postal").fill("78701")
    window.get_by_role("button", name="Pagar", exact=True).click()
    expect(window.locator("#sandbox-done")).to_be_visible()
    check(window, "es: sandbox done")
    window.close()
    expect(step.get_by_role("heading")).to_have_text("El pago se realizó correctamente")
    check(page, "es: result")
    assert not check.problems, "\n".join(check.problems)
    assert [e for e in tab.errors if not EXPECTED_REFUSAL.match(e)] == []


# --- The sandbox processor's bank-account verification page (microdeposits), for a payment and a saved account.

BANK = {"holder": "Dana Demo", "routing": "110000000", "account_type": "checking", "accepted": "1"}
AMOUNTS_ACCOUNT = "000555555559"  # verified by the two deposits' amounts: 32 and 45 cents
CODE_ACCOUNT = "000666666664"  # verified by the one deposit's descriptor code: SM11AA
WORDS = {  # what the test types and clicks, in each language
    "en": {"first": "First deposit", "second": "Second deposit", "code": "Code from the deposit", "verify": "Verify",
           "pay": "Verify and pay $40.00"},
    "es": {"first": "Primer depósito", "second": "Segundo depósito", "code": "Código del depósito",
           "verify": "Verificar", "pay": "Verificar y pagar $40.00"},
}


def _form(url, fields):
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    return parts.path, {**{k: v[0] for k, v in parse_qs(parts.query).items()}, **fields}


@pytest.fixture
def to_verify(app, live_server):
    """(the processor's verification page of a payment, by amounts; the processor's page of a saved account, by
    code; the customer; the payment's ref), both waiting for the customer."""
    from billing import payments
    from db.models import MethodSetup, Payment
    from tests.factories import Portal

    app.extensions["processor"].public_url = live_server.url  # the verification links point at this server
    customer = make_customer()
    make_invoice(customer, cents=4000, due=dt.date.today() + dt.timedelta(days=5))
    portal = Portal(app.test_client())
    assert portal.login(customer.email).status_code == 302
    ref = portal.post("/pay", {"amount": "40.00", "method_type": "ach",
                               "key": payments.new_idempotency_key()}).location.rsplit("/", 1)[1]
    entry = portal.post(f"/payments/{ref}/billing", {
        "name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
        "email": "dana@example.test", "phone": "512-555-0100"}).location
    assert portal.post(*_form(entry, {**BANK, "account": AMOUNTS_ACCOUNT})).status_code == 303
    portal.get(f"/payments/{ref}")
    paying = Payment.get(Payment.ref == ref).verify_url
    entry = portal.post("/methods/add", {"method_type": "ach"}).location
    assert portal.post(*_form(entry, {**BANK, "account": CODE_ACCOUNT})).status_code == 303
    setup = MethodSetup.get(MethodSetup.processor_ref == entry.split("?")[0].rsplit("/", 1)[1])
    saving = app.extensions["processor"].retrieve_setup_intent(setup.processor_ref).verification.url
    assert paying and saving
    return paying, saving, customer, ref


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=["320px", "1280px"])
def test_the_bank_verification_pages_pass_axe_and_fit_the_screen(open_page, to_verify, axe_source, device,
                                                                          lang):
    tab = open_page(locale="es-US" if lang == "es" else "en-US", **device)
    audit = Auditor(axe_source, device["viewport"]["width"])

    def check(page, state):
        assert page.locator("h1").count() == 1, state
        audit(page, state)

    words = WORDS[lang]
    paying, saving, customer, ref = to_verify
    page = tab.login(customer.email)

    # The portal's own form, on the payment's page: where the payment is checked and its debit starts.
    page.goto(tab.base_url + f"/payments/{ref}")
    check(page, f"{lang}: the payment's page, to verify")
    form = page.locator("#verify")
    form.get_by_label(words["first"]).fill("1")
    form.get_by_label(words["second"]).fill("2")
    form.get_by_role("button", name=words["pay"]).click()
    expect(page.locator("#amounts-error")).to_be_visible()
    expect(page.locator("#amount1")).to_have_attribute("aria-describedby", "amounts-error")
    check(page, f"{lang}: the payment's page, wrong amounts")

    # The processor's own page (as Stripe's hosted one), which the portal does not link to.
    page.goto(paying)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    check(page, f"{lang}: verify a payment's account")
    page.get_by_label(words["first"]).fill("12")
    page.get_by_label(words["second"]).fill("34")
    page.get_by_role("button", name=words["verify"]).click()
    expect(page.locator("#amounts-error")).to_be_visible()
    for field in ("#amount1", "#amount2"):
        expect(page.locator(field)).to_have_attribute("aria-describedby", "amounts-error")
    check(page, f"{lang}: verify a payment's account, wrong amounts")
    page.get_by_label(words["first"]).fill("32")
    page.get_by_label(words["second"]).fill("45")
    page.get_by_role("button", name=words["verify"]).click()
    expect(page.locator("#verify-done")).to_be_visible()
    check(page, f"{lang}: payment's account verified")

    page.goto(saving)
    check(page, f"{lang}: verify an account to save")
    page.get_by_label(words["code"]).fill("SM99ZZ")
    page.get_by_role("button", name=words["verify"]).click()
    expect(page.locator("#descriptor_code-error")).to_be_visible()
    expect(page.locator("#descriptor_code")).to_have_attribute("aria-describedby", "descriptor_code-error")
    check(page, f"{lang}: verify an account to save, wrong code")
    page.get_by_label(words["code"]).fill("SM33CC")  # the sandbox's code for a customer out of tries
    page.get_by_role("button", name=words["verify"]).click()
    expect(page.locator("#verify-failed")).to_be_visible()
    check(page, f"{lang}: account to save can no longer be verified")

    assert audit.states == 8
    assert not audit.problems, "\n".join(audit.problems)
    assert [e for e in tab.errors if not EXPECTED_REFUSAL.match(e)] == []
