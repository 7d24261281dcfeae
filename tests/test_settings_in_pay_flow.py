"""The Settings page's payment types and maximum payment apply to the portal's own pay flow."""
from db.models import Isp, Payment


def test_a_payment_type_the_isp_does_not_offer_is_neither_shown_nor_accepted(logged_in, customer):
    from tests.factories import make_invoice
    make_invoice(customer, cents=5000)
    Isp.update(accept_ach=False).execute()
    page = logged_in.get("/payments").get_data(as_text=True)
    assert 'value="card"' in page and 'value="ach"' not in page
    resp = logged_in.post("/pay", {"amount": "10.00", "method_type": "ach", "key": "k" * 24})
    assert resp.status_code == 422 and 'id="method_type-error"' in resp.get_data(as_text=True)
    assert Payment.select().count() == 0


def test_the_maximum_payment_is_enforced(logged_in, customer):
    from tests.factories import make_invoice
    make_invoice(customer, cents=50000)
    Isp.update(max_payment_cents=30000).execute()
    resp = logged_in.post("/pay", {"amount": "300.01", "method_type": "card", "key": "k" * 24})
    assert resp.status_code == 422
    assert "The most you can pay at once is $300.00." in resp.get_data(as_text=True)
    ok = logged_in.post("/pay", {"amount": "300.00", "method_type": "card", "key": "m" * 24})
    assert ok.status_code == 303
