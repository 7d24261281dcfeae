"""Spanish beside English: the catalogue covers every string, the language is chosen and remembered, and dates
and money follow it."""
import datetime as dt
import pathlib
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from db import write_tx
from db.models import Customer, Isp
from tests.factories import PASSWORD, make_customer, make_invoice

ROOT = pathlib.Path(__file__).resolve().parent.parent
PO = ROOT / "translations" / "es" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
SPANISH = {"Accept-Language": "es-US,es;q=0.9"}
# Templates whose every word goes through the catalogue (the customer's pay path, as the help article walks it).
TRANSLATED = ["layout.html", "auth/login.html", "home/_home.html", "invoices/_list.html", "invoices/_detail.html",
              "invoices/_status.html", "payments/_index.html", "payments/_method.html", "payments/_billing.html",
              "payments/_status.html", "payments/_poll.html", "payments/_history.html", "payments/_in_flight.html",
              "payments/_pay_now.html", "sandbox/entry.html", "sandbox/done.html", "sandbox/challenge.html",
              "methods/_autopay_home.html", "macros.html", "account/forgot.html", "account/link_error.html",
              "account/sent.html", "account/set_password.html", "account/signup.html", "error.html",
              "invoices/statement.html", "invoices/_statement.html", "methods/index.html", "methods/_index.html",
              "methods/_add.html", "methods/_banner.html", "methods/_remove.html", "methods/remove.html",
              "methods/_setup.html", "methods/_setup_poll.html", "methods/setup.html", "paylink/_invoice.html",
              "paylink/error.html", "paylink/payment.html", "paylink/show.html", "payments/macros.html",
              "documents/receipt.html", "documents/_receipt.html", "documents/print.html", "documents/macros.html",
              "profile/index.html", "profile/two_factor.html", "profile/confirm_email.html",
              "profile/email_changed.html", "auth/code.html", "sandbox/_head.html", "sandbox/expired.html",
              "stripe/window.html", "stripe/setup.html", "unavailable.html"]


def extracted():
    """Every message the code and templates ask for, found the way pybabel finds them (babel.cfg)."""
    method_map = [("billing/**.py", "python"), ("views/**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "say": None}
    return {msg[2] if isinstance(msg[2], str) else msg[2][0]
            for msg in extract_from_dir(str(ROOT), method_map, keywords=keywords)}


@pytest.fixture(scope="module")
def catalogue():
    with PO.open("rb") as f:
        return read_po(f, locale="es")


def test_every_string_the_portal_asks_for_is_in_the_spanish_catalogue(catalogue):
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogue if m.id}
    missing = sorted(extracted() - ids)
    assert not missing, f"not in {PO.relative_to(ROOT)} (run pybabel extract/update): {missing}"


def test_no_spanish_entry_is_empty_or_fuzzy(catalogue):
    empty = [m.id for m in catalogue if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))]
    fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
    assert not empty and not fuzzy, (empty, fuzzy)


def test_placeholders_survive_translation(catalogue):
    for m in catalogue:
        if m.id and isinstance(m.id, str):
            assert sorted(re.findall(r"%\(\w+\)s", m.id)) == sorted(re.findall(r"%\(\w+\)s", m.string)), m.id


_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)


@pytest.mark.parametrize("name", TRANSLATED)
def test_translated_templates_have_no_words_outside_the_catalogue(name):
    source = (ROOT / "templates" / name).read_text()
    text = _JINJA.sub(" ", source)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    for attr in ("title", "aria-label", "placeholder", "alt", "data-label"):
        stray = [v for v in re.findall(rf'{attr}="([^"]*)"', text) if re.search(r"[A-Za-z]{2,}", v)]
        assert not stray, (name, attr, stray)
    words = re.sub(r"<[^>]*>", " ", text)
    words = re.sub(r"&\w+;", " ", words)
    stray = re.findall(r"[A-Za-z][A-Za-z']+(?:[ .,:?!·-]+[A-Za-z']+)*", words)
    assert not stray, (name, stray)


# Quoted words inside {{ … }} and {% … %}, which the check above cannot see: a phrase outside _() (an English
# word that starts with a capital, or two words with a space), leaving out code such as == "card", attribute
# strings ('type="email"'), %(name)s formats and template names.
_EXPR = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
_STR = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_CALL = re.compile(rf"\b(?:_|gettext|ngettext)\(\s*(?:{_STR})(?:\s*,\s*(?:{_STR}))?")
_LITERAL = re.compile(r""""((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'""")


def quoted_words(source):
    """The English phrases quoted in a template's expressions and not given to _()."""
    found = []
    for m in _EXPR.finditer(source):
        expr = _CALL.sub(" ", m.group(1) or m.group(2))
        if re.match(r"\s*(from|import|include|extends)\b", expr):
            continue
        for lit in _LITERAL.finditer(expr):
            text = lit.group(1) if lit.group(1) is not None else lit.group(2)
            if re.search(r"[=<>/{]|%\(|\.html", text):
                continue
            if re.match(r"[A-Z][a-z]", text) or re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}", text):
                found.append(text)
    return found


def test_the_quoted_words_check_finds_a_phrase_outside_the_catalogue():
    assert quoted_words('{{ "Card" if t == "card" else _("Bank account") }}') == ["Card"]
    assert quoted_words("{% set x = 'Not made: ' %}{{ _('Pay %(a)s', a=b) }}{% include 'x/_y.html' %}") == [
        "Not made: "]


@pytest.mark.parametrize("name", TRANSLATED)
def test_translated_templates_quote_no_words_outside_the_catalogue(name):
    assert not quoted_words((ROOT / "templates" / name).read_text()), name


def test_the_compiled_catalogue_is_built(catalogue):
    assert MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime, "run `make translations`"


def test_spanish_comes_from_the_browser_and_english_is_the_default(client):
    es = client.get("/login", headers=SPANISH).get_data(as_text=True)
    assert '<html lang="es">' in es and "Iniciar sesión" in es and "Contraseña" in es
    en = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in en and "Log in" in en
    fr = client.get("/login", headers={"Accept-Language": "fr-FR"}).get_data(as_text=True)
    assert '<html lang="en">' in fr


def test_the_chooser_on_the_login_page_switches_language_before_logging_in(portal):
    page = portal.client.get("/login").get_data(as_text=True)
    assert re.search(r'<button name="lang" value="es" lang="es">Español</button>', page)
    resp = portal.post("/language", {"lang": "es", "next": "/login"})
    assert resp.status_code == 303 and resp.location == "/login"
    assert "Iniciar sesión" in portal.client.get("/login").get_data(as_text=True)
    assert portal.post("/language", {"lang": "es", "next": "https://evil.example/"}).location == "/"


def test_the_chooser_refuses_a_post_without_its_csrf_token(portal):
    assert portal.post("/language", {"lang": "es"}, csrf=False).status_code == 400


def test_a_customer_choice_is_remembered_on_the_account_and_wins_over_the_browser(app, portal, customer):
    portal.login(customer.email)
    portal.post("/language", {"lang": "es", "next": "/"})
    assert Customer.get_by_id(customer.id).language == "es"
    portal.client.delete_cookie("lang")
    home = portal.client.get("/", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    assert '<html lang="es">' in home and "Saldo a pagar" in home and "Cerrar sesión" in home
    portal.post("/language", {"lang": "en", "next": "/"})
    assert Customer.get_by_id(customer.id).language == "en"


def test_dates_and_money_follow_the_language(logged_in, customer):
    make_invoice(customer, 123456, due=dt.date(2026, 3, 5), number="INV-ES-1")
    es = logged_in.get("/invoices", headers=SPANISH).get_data(as_text=True)
    assert "5 mar 2026" in es and "$1,234.56" in es and "Ver facturas" in es and "Pagar ahora" in es
    en = logged_in.get("/invoices").get_data(as_text=True)
    assert "Mar 5, 2026" in en and "$1,234.56" in en and "View Bills" in en


def test_the_pay_steps_speak_spanish(logged_in, customer):
    from tests.test_pay_flow import BILLING, start

    make_invoice(customer, 5000)
    method = logged_in.get("/payments", headers=SPANISH).get_data(as_text=True)
    assert "Elija su método de pago" in method and "Continuar" in method and "Tarjeta de crédito o débito" in method
    ref = start(logged_in).location.rsplit("/", 1)[1]
    billing = logged_in.get(f"/payments/{ref}", headers=SPANISH).get_data(as_text=True)
    assert "Información de facturación" in billing and "Realizar pago" in billing
    entry = logged_in.post(f"/payments/{ref}/billing", BILLING).location
    window = logged_in.get(entry, headers=SPANISH).get_data(as_text=True)
    assert '<html lang="es">' in window and "Número de tarjeta" in window and ">Pagar<" in window


def test_the_isp_can_turn_spanish_off_and_set_the_default(app, client):
    with write_tx():
        Isp.update(offer_spanish=False).execute()
    page = client.get("/login", headers=SPANISH).get_data(as_text=True)
    assert '<html lang="en">' in page and 'name="lang"' not in page
    with write_tx():
        Isp.update(offer_spanish=True, default_language="es").execute()
    assert '<html lang="es">' in client.get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_a_remembered_spanish_choice_gives_way_when_the_isp_turns_spanish_off(app, portal):
    customer = make_customer(language="es")
    portal.login(customer.email, PASSWORD)
    with write_tx():
        Isp.update(offer_spanish=False).execute()
    assert '<html lang="en">' in portal.client.get("/").get_data(as_text=True)


def test_staff_settings_set_the_default_language_and_turn_spanish_off(app, portal):
    from tests.staff_support import STAFF_EMAIL, log_in_staff, make_staff
    from tests.test_staff_pages import GOOD

    make_staff()
    staff = log_in_staff(portal, STAFF_EMAIL)
    assert staff.post("/staff/settings", {**GOOD, "offer_spanish": "1", "default_language": "es"}).status_code == 303
    assert (Isp.current().offer_spanish, Isp.current().default_language) == (True, "es")
    assert '<html lang="es">' in app.test_client().get("/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    refused = staff.post("/staff/settings", {**GOOD, "default_language": "es"})  # Spanish unticked
    assert refused.status_code == 422 and "Spanish is turned off" in refused.get_data(as_text=True)
    assert Isp.current().offer_spanish is True
    assert staff.post("/staff/settings", {**GOOD, "default_language": "en"}).status_code == 303
    assert Isp.current().offer_spanish is False
    assert '<html lang="en">' in app.test_client().get("/login", headers=SPANISH).get_data(as_text=True)


def test_sign_up_reset_and_error_pages_speak_spanish(client):
    signup = client.get("/signup", headers=SPANISH).get_data(as_text=True)
    assert "Regístrese en el portal de clientes" in signup and "Número de cuenta" in signup
    refused = client.post("/signup", data={}, headers=SPANISH)
    assert refused.status_code in (400, 422)
    reset = client.get("/reset", headers=SPANISH).get_data(as_text=True)
    assert "Restablecer su contraseña" in reset and "Enviarme un enlace" in reset
    missing = client.get("/no-such-page", headers=SPANISH)
    assert missing.status_code == 404 and "No encontramos esa página." in missing.get_data(as_text=True)
    assert "Link not valid" not in client.get("/reset/nope", headers=SPANISH).get_data(as_text=True)


def _speak_spanish(customer):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()


def test_statement_payment_methods_and_two_factor_speak_spanish(logged_in, customer):
    make_invoice(customer, 4500, number="INV-ES-2", issued=dt.date.today())
    _speak_spanish(customer)
    statement = logged_in.get("/statement").get_data(as_text=True)
    assert "Estado de cuenta" in statement and "Saldo inicial" in statement and "Factura INV-ES-2" in statement
    assert "Saldo final" in statement and "Opening balance" not in statement
    methods = logged_in.get("/methods").get_data(as_text=True)
    assert "Agregar un método de pago" in methods and "El pago automático está desactivado." in methods
    assert "Add a payment method" not in methods
    two_factor = logged_in.get("/profile/two-factor").get_data(as_text=True)
    assert "Inicio de sesión en dos pasos" in two_factor
    assert "Configurar el inicio de sesión en dos pasos" in two_factor


def test_field_errors_made_in_billing_are_said_in_spanish_and_stay_english_in_english(logged_in, customer):
    from tests.test_pay_flow import start

    make_invoice(customer, 5000)
    _speak_spanish(customer)
    refused = start(logged_in, "0.50", htmx=True).get_data(as_text=True)
    assert "El pago mínimo es de $1.00." in refused and "minimum payment" not in refused
    assert "Ingrese el importe en dólares y centavos" in start(logged_in, "abc", htmx=True).get_data(as_text=True)
    billing = logged_in.post(f"/payments/{start(logged_in).location.rsplit('/', 1)[1]}/billing", {"name": ""})
    assert "Ingrese su nombre." in billing.get_data(as_text=True)
    logged_in.post("/language", {"lang": "en", "next": "/"})
    assert "The minimum payment is $1.00." in start(logged_in, "0.50", htmx=True).get_data(as_text=True)


def test_the_receipt_page_and_its_print_view_speak_spanish(logged_in, customer):
    from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

    make_invoice(customer, 5000)
    ref, entry = make_payment(logged_in, "50.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    _speak_spanish(customer)
    page = logged_in.get(f"/payments/{ref}/receipt").get_data(as_text=True)
    assert "Recibo de pago" in page and "Código de confirmación" in page and "terminada en 4242" in page
    assert "Payment receipt" not in page
    printed = logged_in.get(f"/payments/{ref}/receipt/print").get_data(as_text=True)
    assert '<html lang="es">' in printed and "Volver al recibo" in printed


def test_a_pay_link_speaks_the_browsers_spanish(app, client):
    from billing import paylinks
    from tests.factories import TEST_CONFIG

    inv = make_invoice(make_customer(), 4000, number="LINK-ES")
    token = paylinks.make(TEST_CONFIG["SECRET_KEY"], inv.id)
    page = client.get(f"/paylink/{token}", headers=SPANISH).get_data(as_text=True)
    assert "Pagar la factura LINK-ES" in page and "Elija su método de pago" in page and "Continuar" in page
    gone = client.get("/paylink/not-a-token", headers=SPANISH)
    assert gone.status_code in (404, 410) and "Este enlace de pago no es válido." in gone.get_data(as_text=True)
    assert "Pay invoice LINK-ES" in client.get(f"/paylink/{token}").get_data(as_text=True)


def test_the_unavailable_page_follows_the_browser_without_asking_the_database(app):
    from peewee import OperationalError

    def busy():
        raise OperationalError("database is locked")

    app.add_url_rule("/i18n-test-busy", "i18n_test_busy", busy)
    client = app.test_client()
    es = client.get("/i18n-test-busy", headers=SPANISH)
    assert es.status_code == 503 and '<html lang="es">' in es.get_data(as_text=True)
    assert "la base de datos está ocupada" in es.get_data(as_text=True)
    en = client.get("/i18n-test-busy").get_data(as_text=True)
    assert "Temporarily unavailable" in en and "the database is busy" in en


def _paid(portal, customer, cents=5000):
    from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

    make_invoice(customer, cents, number="INV-ES-9")
    ref, entry = make_payment(portal, f"{cents // 100}.{cents % 100:02d}")
    pay_at_processor(portal, entry, GOOD_CARD)
    portal.get(f"/payments/{ref}")
    return ref


def test_pdfs_follow_the_customers_language(logged_in, customer, tmp_path):
    from tests.test_documents import pdf_text

    ref = _paid(logged_in, customer)
    _speak_spanish(customer)
    receipt = pdf_text(logged_in.get(f"/payments/{ref}/receipt.pdf").data, tmp_path)
    assert "Recibo de pago" in receipt and "Código de confirmación" in receipt and "terminada en 4242" in receipt
    statement = pdf_text(logged_in.get("/statement.pdf").data, tmp_path, "s.pdf")
    assert "Estado de cuenta" in statement and "Factura INV-ES-9" in statement and "Saldo final" in statement
    from db.models import Invoice

    invoice_id = Invoice.get(Invoice.number == "INV-ES-9").id
    invoice = pdf_text(logged_in.get(f"/invoices/{invoice_id}.pdf").data, tmp_path, "i.pdf")
    assert "Factura INV-ES-9" in invoice and "Saldo a pagar" in invoice and "Pagada" in invoice


def test_the_plain_text_receipt_is_spanish_ascii_and_fits_one_sms(logged_in, customer):
    ref = _paid(logged_in, customer)
    english = logged_in.get(f"/payments/{ref}/receipt.txt").get_data(as_text=True)
    assert ": payment $50.00 received " in english and "Confirmation " in english
    _speak_spanish(customer)
    text = logged_in.get(f"/payments/{ref}/receipt.txt").get_data(as_text=True).strip()
    assert ": pago $50.00 recibido " in text and ", Visa ..4242. Confirmacion " in text
    assert text.isascii() and len(text) <= 160


def test_a_spanish_customer_gets_the_receipt_email_in_spanish(logged_in, customer):
    from db.models import Outbox

    _speak_spanish(customer)
    _paid(logged_in, customer)
    mail = Outbox.get(Outbox.kind == "payment_receipt")
    assert mail.subject.endswith(": Pago recibido")
    assert "Gracias. Recibimos su pago de $50.00." in mail.text_body and "Código de confirmación:" in mail.text_body
    assert "Método: Visa terminada en 4242" in mail.text_body and "Aplicado a: INV-ES-9 ($50.00)" in mail.text_body


def test_an_english_customer_gets_the_receipt_email_as_before(logged_in, customer):
    from db.models import Outbox

    _paid(logged_in, customer)
    mail = Outbox.get(Outbox.kind == "payment_receipt")
    assert mail.subject.endswith(": Payment received")
    assert "Thank you. We received your payment of $50.00.\n\nConfirmation code: " in mail.text_body
    assert "Method: Visa ending 4242\nApplied to: INV-ES-9 ($50.00)\n" in mail.text_body


def test_autopay_notices_and_invites_follow_the_account_language_outside_a_request(app, customer):
    from billing import invites, notices
    from db.models import Outbox, PaymentMethod

    _speak_spanish(customer)
    customer = Customer.get_by_id(customer.id)
    method = PaymentMethod(method_type="card", brand="Visa", last4="4242", exp_month=3, exp_year=2027, id=1)
    invoice = make_invoice(customer, 4500, number="INV-AP-1")
    with write_tx():
        notices.autopay_upcoming(customer, invoice, 4500, dt.date(2026, 3, 5), method, "c1")
        notices.card_expiring(customer, method, dt.date(2027, 3, 31), True)
    upcoming = Outbox.get(Outbox.kind == "autopay_upcoming")
    assert "El pago automático cobrará $45.00 de la factura INV-AP-1 el 5 de marzo de 2026" in upcoming.text_body
    assert upcoming.subject.endswith("Pago automático el 5 mar: $45.00")
    expiring = Outbox.get(Outbox.kind == "card_expiring")
    assert "vence a fines de marzo de 2027. El pago automático usa esta tarjeta." in expiring.text_body
    other = make_customer(email="nuevo@example.test", language="es")
    subject, text = invites.invite_email(Isp.current(), other, "https://portal.example.test/invite/t")
    assert "portal de clientes" in subject and text.startswith(f"Hola, {other.name}:")


def test_the_email_change_emails_follow_the_account_language(app, logged_in, customer):
    from db.models import Outbox
    from tests.factories import PASSWORD

    _speak_spanish(customer)
    asked = logged_in.post("/profile/email", {"email": "nueva@example.test", "email_password": PASSWORD})
    assert asked.status_code == 200
    mail = Outbox.get(Outbox.kind == "email_change")
    assert "Confirme su nuevo correo electrónico" in mail.subject
    assert "Si fue usted, siga este enlace" in mail.text_body
    token = mail.text_body.split("/email-change/")[1].split()[0]
    logged_in.post(f"/email-change/{token}")
    told = Outbox.get(Outbox.kind == "email_changed")
    assert told.to_addr == customer.email and "cambió de" in told.text_body and "nueva@example.test" in told.text_body


def test_a_refund_email_follows_the_account_language(logged_in, customer):
    from billing import payments
    from db.models import Outbox, Payment

    ref = _paid(logged_in, customer)
    _speak_spanish(customer)
    assert payments.record_refunds(Payment.get(Payment.ref == ref).id, [("re_es_1", 1000)])
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert mail.subject == "Reembolso de $10.00" and f"Le reembolsamos $10.00 de su pago {ref}." in mail.text_body


def test_a_page_finds_its_catalogue_once_however_many_strings_it_translates(client, monkeypatch):
    import flask_babel

    found = []
    real = flask_babel.Domain.get_translations

    def counting(self):
        found.append(1)
        return real(self)

    monkeypatch.setattr(flask_babel.Domain, "get_translations", counting)
    page = client.get("/login", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Iniciar sesión" in page and "Contraseña" in page
    assert len(found) == 1


def test_a_forced_locale_inside_a_request_still_translates_in_that_locale(app):
    from flask import render_template_string
    from flask_babel import force_locale

    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        spanish = render_template_string('{{ _("Password") }}')
        with force_locale("en"):
            english = render_template_string('{{ _("Password") }}')
        assert english == "Password" and spanish != "Password"
        assert render_template_string('{{ _("Password") }}') == spanish


def test_money_in_a_locale_is_formatted_by_babel_once_per_amount(monkeypatch):
    from billing import money

    calls = []
    real = money.format_currency
    monkeypatch.setattr(money, "format_currency", lambda *a, **k: calls.append(a) or real(*a, **k))
    money._formatted.cache_clear()
    first = money.format_money(123457, "USD", locale="es_US")
    assert money.format_money(123457, "USD", locale="es_US") == first and len(calls) == 1
    assert money.format_money(-500, "USD", locale="en_US") == "-$5.00"


def test_a_date_in_a_locale_is_formatted_by_babel_once(app, monkeypatch):
    import views

    calls = []
    real = views.babel_dates.format_date
    monkeypatch.setattr(views.babel_dates, "format_date", lambda *a, **k: calls.append(a) or real(*a, **k))
    views._medium_date.cache_clear()
    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        date = app.jinja_env.filters["date"]
        assert date(dt.date(2026, 3, 5)) == "5 mar 2026"
        assert date(dt.datetime(2026, 3, 5, 14, 7)) == "5 mar 2026 14:07 UTC"
    assert len(calls) == 1
