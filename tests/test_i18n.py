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
              "account/sent.html", "account/set_password.html", "account/signup.html", "error.html"]


def extracted():
    """Every message the code and templates ask for, found the way pybabel finds them (babel.cfg)."""
    method_map = [("billing/**.py", "python"), ("views/**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
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
