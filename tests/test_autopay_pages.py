"""Payment methods and autopay through HTTP: enrolment, the methods page, the on-session link, the CLI."""
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape

from billing import autopay, legal, methods, payments
from db.models import AutopayAuthorization, AutopayCharge, AutopayEnrolment, Outbox, Payment, PaymentMethod
from tests.factories import make_customer, make_invoice

TODAY = dt.date.today()
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
GOOD_CARD = {"number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123", "zip": "78701"}


def submit(portal, url, fields):
    """Submit a sandbox page (entry or setup) with its query string, as the pop-up does."""
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return portal.post(parts.path, {**q, **fields})


def add_card(portal, card=GOOD_CARD):
    """Add a card on the payment methods page, without JavaScript."""
    resp = portal.post("/methods/add", {"method_type": "card"})
    assert resp.status_code == 303 and resp.location.startswith("/sandbox/setup/"), resp.get_data(as_text=True)
    done = submit(portal, resp.location, card)
    assert done.status_code == 303, done.get_data(as_text=True)
    return portal.get(done.location)


def test_save_for_autopay_at_the_billing_step_turns_autopay_on_and_records_the_acceptance(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=10))
    page = logged_in.post("/pay", {"amount": "30.00", "method_type": "card",
                                   "key": payments.new_idempotency_key()})
    ref = page.location.rsplit("/", 1)[1]
    billing = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert 'id="autopay-terms"' in billing and legal.AUTOPAY_WORDS["en"]["text"].split("{")[0] in billing
    entry = logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"}).location
    submit(logged_in, entry, GOOD_CARD)
    assert "Payment was successful" in logged_in.get(f"/payments/{ref}").get_data(as_text=True)

    enrol = AutopayEnrolment.get(AutopayEnrolment.customer == customer.id)
    method = PaymentMethod.get()
    auth = AutopayAuthorization.get()
    assert enrol.enabled and enrol.payment_method_id == method.id and enrol.authorization_id == auth.id
    assert (auth.source, auth.ip, auth.user_agent, auth.text_version) == (
        "billing", "127.0.0.1", auth.user_agent, legal.AUTOPAY_VERSION)
    assert auth.user_agent.startswith("Werkzeug/")  # the browser's User-Agent header
    assert auth.payment.ref == ref and auth.payment_method_id == method.id
    home = logged_in.get("/").get_data(as_text=True)
    assert "Autopay is on" in home and "Visa ending 4242" in home
    assert Outbox.select().where(Outbox.kind == "payment_receipt").count() == 1


def test_without_the_box_a_payment_does_not_enrol(logged_in, customer):
    make_invoice(customer, 3000)
    ref = logged_in.post("/pay", {"amount": "30.00", "method_type": "card",
                                  "key": payments.new_idempotency_key()}).location.rsplit("/", 1)[1]
    submit(logged_in, logged_in.post(f"/payments/{ref}/billing", BILLING).location, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    assert AutopayEnrolment.select().count() == 0 and AutopayAuthorization.select().count() == 0
    assert "Autopay is off" in logged_in.get("/").get_data(as_text=True)


def test_add_a_card_without_javascript_then_it_is_listed_as_default(logged_in, customer):
    assert "You have no saved payment methods" in logged_in.get("/methods").get_data(as_text=True)
    page = add_card(logged_in).get_data(as_text=True)
    assert "Saved: Visa ending 4242" in page
    assert "Visa ending 4242" in page and "12/2034" in page and "Default" in page
    assert PaymentMethod.get().customer_id == customer.id


def test_add_with_htmx_shows_the_window_step_and_the_poll_finishes_it(app, logged_in):
    resp = logged_in.post("/methods/add", {"method_type": "card"}, htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="pay-window"' in html and "mode=popup" in html
    ref = resp.headers["HX-Push-Url"].rsplit("/", 1)[1]
    status = f"/methods/setup/{ref}/status"
    assert 'id="pay-poll"' in logged_in.get(status, htmx=True).get_data(as_text=True)
    popup = html.split('data-popup-url="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    done = submit(logged_in, popup, GOOD_CARD)
    assert done.status_code == 200 and "This window will close" in done.get_data(as_text=True)
    final = logged_in.get(status, htmx=True)
    assert final.headers["HX-Retarget"] == "#methods" and "data-pay-final" in final.get_data(as_text=True)
    assert "Saved: Visa ending 4242" in final.get_data(as_text=True)


def test_a_declined_card_is_not_saved_and_can_be_retried(logged_in):
    resp = logged_in.post("/methods/add", {"method_type": "card"})
    declined = submit(logged_in, resp.location, {**GOOD_CARD, "number": "4000 0000 0000 0002"})
    assert declined.status_code == 402 and "declined" in declined.get_data(as_text=True)
    assert "4000" not in declined.get_data(as_text=True).split("</h1>", 1)[1].split("declined")[0]
    assert PaymentMethod.select().count() == 0
    assert submit(logged_in, resp.location, GOOD_CARD).status_code == 303
    assert PaymentMethod.select().count() == 0  # saved when the portal checks:
    logged_in.get(f"/methods/setup/{methods.MethodSetup.get().ref}")
    assert PaymentMethod.select().count() == 1


def test_turn_autopay_on_from_the_methods_page_needs_the_authorization(logged_in, customer):
    add_card(logged_in)
    method = PaymentMethod.get()
    page = logged_in.get("/methods").get_data(as_text=True)
    assert str(escape(autopay.authorization_text())) in page and "Autopay is off" in page
    refused = logged_in.post("/methods/autopay/on", {"method": str(method.id)})
    assert refused.status_code == 422 and "accept the autopay authorization" in refused.get_data(as_text=True)
    assert AutopayEnrolment.select().count() == 0
    on = logged_in.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    assert on.status_code == 200 and "Autopay is on" in on.get_data(as_text=True)
    auth = AutopayAuthorization.get()
    assert (auth.source, auth.ip) == ("methods", "127.0.0.1") and auth.user_agent.startswith("Werkzeug/")


def test_home_shows_the_next_charge_and_turning_off_is_one_click(logged_in, customer):
    add_card(logged_in)
    logged_in.post("/methods/autopay/on", {"method": str(PaymentMethod.get().id), "accepted": "1"})
    make_invoice(customer, 4200, due=TODAY + dt.timedelta(days=6))
    home = logged_in.get("/").get_data(as_text=True)
    assert "Autopay is on" in home and "$42.00 on" in home
    resp = logged_in.post("/methods/autopay/off", {"from": "home"})
    assert resp.status_code == 303 and resp.location == "/"
    assert not AutopayEnrolment.get().enabled
    assert "Autopay is off" in logged_in.get("/").get_data(as_text=True)


def test_set_default_and_remove_with_the_password(logged_in, customer):
    add_card(logged_in)
    add_card(logged_in, {**GOOD_CARD, "number": "5555 5555 5555 4444"})
    first, second = PaymentMethod.select().order_by(PaymentMethod.id)
    assert methods.default_id(customer.id) == first.id
    resp = logged_in.post(f"/methods/{second.id}/default", {}, htmx=True)
    assert "Mastercard ending 4444 is now your default" in resp.get_data(as_text=True)
    assert methods.default_id(customer.id) == second.id

    logged_in.post("/methods/autopay/on", {"method": str(second.id), "accepted": "1"})
    confirm = logged_in.get(f"/methods/{second.id}/remove").get_data(as_text=True)
    assert "Removing it turns autopay off" in confirm and 'type="password"' in confirm
    wrong = logged_in.post(f"/methods/{second.id}/remove", {"password": "nope"})
    assert wrong.status_code == 422 and "password is not right" in wrong.get_data(as_text=True)
    assert PaymentMethod.get_by_id(second.id).removed_at is None
    done = logged_in.post(f"/methods/{second.id}/remove", {"password": "correct horse battery"})
    text = done.get_data(as_text=True)
    assert "Mastercard ending 4444 was removed" in text and "Autopay is now off" in text
    assert PaymentMethod.get_by_id(second.id).removed_at is not None
    assert not AutopayEnrolment.get().enabled
    assert "ending 4444" not in logged_in.get("/methods").get_data(as_text=True).split("<h2>Autopay")[0]


def test_another_customers_method_and_setup_are_404(logged_in, app):
    other = make_customer()
    theirs = PaymentMethod.create(customer=other.id, processor="sandbox", processor_ref="pm_sbx_theirs",
                                  method_type="card", brand="Visa", last4="1111", exp_month=1, exp_year=2035)
    setup = methods.start_setup(other.id, "card", app.extensions["processor"])
    assert logged_in.post(f"/methods/{theirs.id}/default", {}).status_code == 404
    assert logged_in.get(f"/methods/{theirs.id}/remove").status_code == 404
    assert logged_in.post(f"/methods/{theirs.id}/remove", {"password": "correct horse battery"}).status_code == 404
    assert logged_in.get(f"/methods/setup/{setup.ref}").status_code == 404
    assert logged_in.get(f"/methods/setup/{setup.ref}/status").status_code == 404
    refused = logged_in.post("/methods/autopay/on", {"method": str(theirs.id), "accepted": "1"})
    assert refused.status_code == 422 and AutopayEnrolment.select().count() == 0
    assert PaymentMethod.get_by_id(theirs.id).removed_at is None


def enrol_with(logged_in, card):
    add_card(logged_in, card)
    logged_in.post("/methods/autopay/on", {"method": str(PaymentMethod.get().id), "accepted": "1"})


def test_a_declined_autopay_charge_shows_a_banner_with_a_pay_link(app, logged_in, customer, runner):
    enrol_with(logged_in, {**GOOD_CARD, "number": "4000 0000 0000 9995"})
    inv = make_invoice(customer, 4000, due=TODAY)
    result = runner.invoke(args=["autopay"])
    assert result.exit_code == 0, result.output
    assert "charged 0, failed 1, skipped 0, total $0.00" in result.output
    home = logged_in.get("/").get_data(as_text=True)
    assert 'id="autopay-banner"' in home and "insufficient funds" in home
    assert f'href="/invoices/{inv.id}/pay"' in home
    assert logged_in.get(f"/invoices/{inv.id}/pay").status_code == 200


def test_authentication_required_link_lets_the_customer_finish_on_session(app, logged_in, customer, runner):
    enrol_with(logged_in, {**GOOD_CARD, "number": "4000 0027 6000 3184"})
    inv = make_invoice(customer, 4000, due=TODAY)
    assert "failed 1" in runner.invoke(args=["autopay"]).output
    charge = AutopayCharge.get()
    link = f"/payments/{charge.payment.ref}"
    email = Outbox.get(Outbox.kind == "autopay_failed")
    assert app.config["PUBLIC_URL"] + link in email.text_body
    assert f'href="{link}"' in logged_in.get("/").get_data(as_text=True)
    page = logged_in.get(link).get_data(as_text=True)  # the link from the email and the banner
    entry = page.split('data-popup-url="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    challenge = logged_in.get(entry).get_data(as_text=True)
    assert "Confirm it's you" in challenge
    parts = urlsplit(entry)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    logged_in.post(parts.path + "/challenge", {**q, "outcome": "approve"})
    assert "Payment was successful" in logged_in.get(link).get_data(as_text=True)
    assert AutopayCharge.get().status == autopay.CHARGED
    assert Payment.get_by_id(charge.payment_id).target_invoice_id == inv.id
    assert 'id="autopay-banner"' not in logged_in.get("/").get_data(as_text=True)


def test_autopay_command_dry_run_and_progress(app, logged_in, customer, runner):
    enrol_with(logged_in, GOOD_CARD)
    make_invoice(customer, 4000, due=TODAY)
    dry = runner.invoke(args=["autopay", "--dry-run"])
    assert dry.exit_code == 0 and "would charge 1, failed 0, skipped 0, total $40.00" in dry.output
    assert Payment.select().count() == 0
    real = runner.invoke(args=["autopay"])
    assert "autopay" in real.output and "charged 1, failed 0, skipped 0, total $40.00" in real.output
    again = runner.invoke(args=["autopay"])
    assert "charged 0" in again.output


@pytest.mark.parametrize("args, expected", [
    ([], "charge: on each invoice due date"),
    (["--days-before", "2", "--attempts", "4"], "attempts: 4, 3 day(s) apart"),
])
def test_autopay_policy_command(runner, args, expected):
    result = runner.invoke(args=["autopay-policy", *args])
    assert result.exit_code == 0 and expected in result.output, result.output


def test_two_autopay_processes_at_once_charge_each_invoice_once(app, database_url):
    import os
    import pathlib
    import subprocess
    import sys

    from db import database
    from db.jobs import EXIT_BUSY
    from db.models import SandboxIntent
    from tests.test_autopay import enrolled

    processor = app.extensions["processor"]
    for _ in range(30):
        customer, _ = enrolled(processor)
        make_invoice(customer, 2500, due=TODAY)
    database.close()
    env = {**os.environ, "DATABASE_URL": database_url, "SANDBOX_WORKER": "false", "SECRET_KEY": "x",
           "SANDBOX_WEBHOOK_SECRET": app.config["SANDBOX_WEBHOOK_SECRET"], "SMTP_URL": "console"}
    root = pathlib.Path(__file__).resolve().parent.parent
    runs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "autopay"], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=120)[0] for r in runs]
    # Either both ran (the UNIQUE attempt rows split the work), or one found the job's lock held and did
    # nothing (exit 75, EX_TEMPFAIL): never a failure, and never a charge twice.
    assert all(r.returncode in (0, EXIT_BUSY) for r in runs), outputs
    assert any(r.returncode == 0 for r in runs), outputs
    ran = [out for r, out in zip(runs, outputs) if r.returncode == 0]
    charged = [int(out.split("autopay done in")[1].split("charged ")[1].split(",")[0]) for out in ran]
    assert sum(charged) == 30, outputs
    assert AutopayCharge.select().count() == 30
    assert Payment.select().where(Payment.status == payments.SUCCEEDED).count() == 30
    assert SandboxIntent.select().where((SandboxIntent.status == "succeeded")
                                        & (SandboxIntent.amount_cents > 0)).count() == 30
    assert Outbox.select().where(Outbox.kind == "autopay_charged").count() == 30
