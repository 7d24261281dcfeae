"""Ownership: a customer reaches only their own records; anyone else's id is a 404."""
import pytest

from billing import payments
from db.models import MethodSetup, PaymentMethod
from tests.factories import make_customer, make_invoice

# Every customer route that takes a record id: (method, url template, form data).
# A new such route must be added here; test_every_id_route_is_walked fails until it is.
ID_ROUTES = {
    "invoices.detail": ("GET", "/invoices/{invoice}", None),
    "payments.pay_invoice": ("GET", "/invoices/{invoice}/pay", None),
    "payments.show": ("GET", "/payments/{payment}", None),
    "payments.status": ("GET", "/payments/{payment}/status", None),
    "payments.billing": ("POST", "/payments/{payment}/billing", {"name": "X"}),
    "payments.cancel": ("POST", "/payments/{payment}/cancel", {}),
    "payments.renew": ("POST", "/payments/{payment}/renew", {}),
    "payments.verify": ("POST", "/payments/{payment}/verify", {"amount1": "32", "amount2": "45"}),
    "payments.start": ("POST", "/pay", {"invoice_id": "{invoice}", "amount": "1.00", "method_type": "card",
                                        "key": "k" * 24}),
    # Documents (tests/test_receipts.py and tests/test_documents.py also walk them with a succeeded payment).
    "documents.receipt": ("GET", "/payments/{payment}/receipt", None),
    "documents.receipt_text": ("GET", "/payments/{payment}/receipt.txt", None),
    "documents.receipt_print": ("GET", "/payments/{payment}/receipt/print", None),
    "documents.receipt_pdf": ("GET", "/payments/{payment}/receipt.pdf", None),
    "documents.invoice_print": ("GET", "/invoices/{invoice}/print", None),
    "documents.invoice_pdf": ("GET", "/invoices/{invoice}.pdf", None),
    "methods.make_default": ("POST", "/methods/{method}/default", {}),
    "methods.remove": ("POST", "/methods/{method}/remove", {"password": "correct horse battery"}),
    "methods.setup_show": ("GET", "/methods/setup/{setup}", None),
    "methods.setup_status": ("GET", "/methods/setup/{setup}/status", None),
    # Stripe's window and its calls (absent with the sandbox; tests/test_stripe_payments.py walks them with Stripe).
    "stripe_pay.window": ("GET", "/payments/{payment}/window?mode=popup", None),
    "stripe_pay.card": ("POST", "/payments/{payment}/stripe/card", {"payment_method": "pm_x"}),
    "stripe_pay.bank": ("POST", "/payments/{payment}/stripe/bank", {"accepted": "1"}),
    "stripe_pay.sync": ("POST", "/payments/{payment}/stripe/sync", {}),
    "stripe_pay.saved": ("POST", "/payments/{payment}/stripe/saved", {}),
    # Stripe's setup window (tests/test_stripe_methods.py walks them with Stripe).
    "stripe_pay.setup_window": ("GET", "/methods/setup/{setup}/window?mode=popup", None),
    "stripe_pay.setup_sync": ("POST", "/methods/setup/{setup}/stripe/sync", {}),
    "stripe_pay.setup_bank": ("POST", "/methods/setup/{setup}/stripe/bank", {"accepted": "1"}),
}
# Prefixes of routes that are not the logged-in customer's (they have their own access tests).
OTHER_AREAS = ("/static", "/assets", "/sandbox", "/webhooks", "/staff", "/api", "/login", "/logout",
               "/invite", "/reset",  # token links: tests/test_invites.py
               "/email-change",  # the link to a new address: tests/test_email_change.py
               "/paylink",  # pay links and their Stripe window: tests/test_paylink.py, tests/test_paylink_stripe.py
               "/logo")  # the ISP's public logo: tests/test_staff_pages.py


@pytest.fixture
def victim(app):
    """Another customer with an invoice and a payment in progress."""
    other = make_customer()
    inv = make_invoice(other, 5000)
    pay = payments.start_payment(other.id, amount_text="10.00", method_type="card",
                                 idempotency_key=payments.new_idempotency_key())
    method = PaymentMethod.create(customer=other.id, processor="sandbox", processor_ref="pm_sbx_victim",
                                  method_type="card", brand="Visa", last4="4242", exp_month=12, exp_year=2034)
    setup = MethodSetup.create(ref="SET-VICTIM", customer=other.id, processor="sandbox", method_type="card",
                               status="open")
    return {"invoice": inv.id, "payment": pay.ref, "customer": other, "method": method.id, "setup": setup.ref}


@pytest.mark.parametrize("endpoint", sorted(ID_ROUTES))
def test_another_customers_ids_get_404(logged_in, victim, endpoint):
    method, url, data = ID_ROUTES[endpoint]
    url = url.format(**victim)
    if data is not None:
        data = {k: v.format(**victim) for k, v in data.items()}
    resp = logged_in.get(url) if method == "GET" else logged_in.post(url, data)
    assert resp.status_code == 404, (endpoint, resp.status_code)
    # and the victim's payment was not touched
    assert payments.for_customer(victim["customer"].id, victim["payment"]).status == payments.CREATED


def test_every_id_route_is_walked(app):
    for rule in app.url_map.iter_rules():
        if rule.arguments and not rule.rule.startswith(OTHER_AREAS):
            assert rule.endpoint in ID_ROUTES, f"{rule.rule} takes an id: add it to ID_ROUTES"


def test_own_records_are_reachable(logged_in, customer):
    inv = make_invoice(customer, 5000)
    assert logged_in.get(f"/invoices/{inv.id}").status_code == 200
    assert logged_in.get(f"/invoices/{inv.id}/pay").status_code == 200


def test_unknown_ids_get_404(logged_in):
    assert logged_in.get("/invoices/999999").status_code == 404
    assert logged_in.get("/payments/PAY-NOPE").status_code == 404


def test_an_address_that_does_not_exist_is_a_404_page_when_logged_in(logged_in):
    resp = logged_in.get("/no/such/page")
    assert resp.status_code == 404 and "We could not find that page." in resp.get_data(as_text=True)
