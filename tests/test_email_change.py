"""Changing the login's email: the password first, a link to the new address, the old address told."""
import re

import pytest

from billing import email_change, identity, invites, throttle
from db import write_tx
from db.models import AccountToken, AuditLog, Customer, Outbox, User
from tests.factories import PASSWORD, make_customer

LINK = re.compile(r"http://[^\s]+/email-change/([A-Za-z0-9_-]+)")


def _link_in_latest_mail(to):
    mail = Outbox.select().where(Outbox.to_addr == to).order_by(Outbox.id.desc()).first()
    assert mail is not None, f"no email to {to}"
    return LINK.search(mail.text_body).group(1)


def test_the_email_changes_only_once_the_new_address_follows_the_link(app, logged_in, customer):
    resp = logged_in.post("/profile/email", {"email": "  New.Address@Example.TEST ", "email_password": PASSWORD})
    assert resp.status_code == 200 and "We sent a link to your new address" in resp.get_data(as_text=True)
    assert User.get(User.customer == customer.id).email == customer.email  # not yet
    assert "new.address@example.test" in logged_in.get("/profile").get_data(as_text=True)  # shown as waiting
    token = _link_in_latest_mail("new.address@example.test")

    page = logged_in.get(f"/email-change/{token}")  # a mail scanner's GET changes nothing
    assert page.status_code == 200 and "Confirm my new email" in page.get_data(as_text=True)
    assert User.get(User.customer == customer.id).email == customer.email

    done = logged_in.post(f"/email-change/{token}")
    assert done.status_code == 200 and "new.address@example.test" in done.get_data(as_text=True)
    user = User.get(User.customer == customer.id)
    assert user.email == "new.address@example.test"
    assert Customer.get_by_id(customer.id).email == "new.address@example.test"  # receipts follow
    told = Outbox.get((Outbox.to_addr == customer.email) & (Outbox.kind == "email_changed"))
    assert "new.address@example.test" in told.text_body and "call us" in told.text_body
    assert AuditLog.select().where(AuditLog.action == "email.changed").count() == 1
    # The new address logs in; the old one no longer does.
    assert identity.authenticate("new.address@example.test", PASSWORD).id == user.id
    assert identity.authenticate(customer.email, PASSWORD) is None
    # The link works once.
    again = logged_in.post(f"/email-change/{token}")
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)


@pytest.mark.parametrize("email, password, field, message", [
    ("", PASSWORD, "email", "Enter an email address."),
    ("not-an-address", PASSWORD, "email", "like name@example.com"),
    ("a@b.c" + "x" * 260, PASSWORD, "email", "like name@example.com"),
    ("fresh@example.test", "wrong password", "email_password", "not your current password"),
    ("fresh@example.test", "", "email_password", "not your current password"),
])
def test_bad_requests_say_why_next_to_the_field_and_send_nothing(app, logged_in, email, password, field, message):
    resp = logged_in.post("/profile/email", {"email": email, "email_password": password})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', body), body
    assert f'aria-describedby="{field}-error"' in body
    assert Outbox.select().where(Outbox.kind == "email_change").count() == 0


def test_an_address_another_login_has_is_refused(app, logged_in, customer):
    other = make_customer()
    resp = logged_in.post("/profile/email", {"email": other.email.upper(), "email_password": PASSWORD})
    assert resp.status_code == 422 and "Another login already uses that address" in resp.get_data(as_text=True)
    resp = logged_in.post("/profile/email", {"email": customer.email, "email_password": PASSWORD})
    assert resp.status_code == 422 and "already your email address" in resp.get_data(as_text=True)


def test_an_address_taken_between_request_and_link_is_not_switched(app, logged_in, customer):
    logged_in.post("/profile/email", {"email": "wanted@example.test", "email_password": PASSWORD})
    token = _link_in_latest_mail("wanted@example.test")
    make_customer(email="wanted@example.test")  # someone else got there first
    resp = logged_in.post(f"/email-change/{token}")
    assert resp.status_code == 410 and "Another login already uses that address" in resp.get_data(as_text=True)
    assert User.get(User.customer == customer.id).email == customer.email


def test_a_newer_request_replaces_the_older_link(app, logged_in, customer):
    logged_in.post("/profile/email", {"email": "first@example.test", "email_password": PASSWORD})
    first = _link_in_latest_mail("first@example.test")
    logged_in.post("/profile/email", {"email": "second@example.test", "email_password": PASSWORD})
    assert logged_in.post(f"/email-change/{first}").status_code == 410
    second = _link_in_latest_mail("second@example.test")
    assert logged_in.post(f"/email-change/{second}").status_code == 200
    assert User.get(User.customer == customer.id).email == "second@example.test"


def test_at_most_three_confirmation_emails_an_hour(app, logged_in):
    for n in range(email_change.HOURLY_EMAILS):
        assert logged_in.post("/profile/email", {"email": f"n{n}@example.test",
                                                 "email_password": PASSWORD}).status_code == 200
    resp = logged_in.post("/profile/email", {"email": "n9@example.test", "email_password": PASSWORD})
    assert resp.status_code == 422 and "Please wait an hour" in resp.get_data(as_text=True)
    assert Outbox.select().where(Outbox.kind == "email_change").count() == email_change.HOURLY_EMAILS


def test_the_password_asked_is_throttled_like_every_password_check(app, logged_in):
    codes = [logged_in.post("/profile/email", {"email": "x@example.test", "email_password": "guess"}).status_code
             for _ in range(throttle.ACCOUNT.free + 2)]
    # The free attempts, then one that starts the wait, then refused while it lasts.
    assert codes[:-1] == [422] * (throttle.ACCOUNT.free + 1) and codes[-1] == 429


def test_the_link_is_no_credential_for_anything_else(app, logged_in, portal):
    logged_in.post("/profile/email", {"email": "other@example.test", "email_password": PASSWORD})
    token = _link_in_latest_mail("other@example.test")
    # It cannot set a password (the reset and invite pages refuse it) ...
    assert portal.client.get(f"/reset/{token}").status_code == 410
    with pytest.raises(invites.TokenError):
        invites.accept(token, "a brand new password", "a brand new password")
    # ... and an unknown or tampered link gets the link page, not a 500.
    assert portal.client.get(f"/email-change/{token[:-2]}xx").status_code == 410
    assert portal.client.get("/email-change/" + "é" * 40).status_code in (400, 404, 410)


def test_a_disabled_login_cannot_switch(app, logged_in, customer):
    logged_in.post("/profile/email", {"email": "late@example.test", "email_password": PASSWORD})
    token = _link_in_latest_mail("late@example.test")
    user = User.get(User.customer == customer.id)
    identity.set_login_disabled(user.id, True, actor="staff:1")
    assert logged_in.post(f"/email-change/{token}").status_code == 410
    assert User.get_by_id(user.id).email == customer.email


def test_confirming_needs_the_csrf_token(app, logged_in):
    logged_in.post("/profile/email", {"email": "csrf@example.test", "email_password": PASSWORD})
    token = _link_in_latest_mail("csrf@example.test")
    assert logged_in.post(f"/email-change/{token}", csrf=False).status_code == 400
    assert logged_in.post("/profile/email", {"email": "y@example.test", "email_password": PASSWORD},
                          csrf=False).status_code == 400


def test_the_profile_page_is_in_spanish(app, logged_in, customer):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()
    body = logged_in.get("/profile").get_data(as_text=True)
    assert "Cambiar su correo electrónico" in body and "Change your email" not in body
    resp = logged_in.post("/profile/email", {"email": "es@example.test", "email_password": PASSWORD})
    assert "Enviamos un enlace a su nueva dirección" in resp.get_data(as_text=True)


def test_losing_a_race_for_the_address_is_a_clear_page_not_a_500(app, logged_in, customer, monkeypatch):
    logged_in.post("/profile/email", {"email": "raced@example.test", "email_password": PASSWORD})
    token = _link_in_latest_mail("raced@example.test")
    make_customer(email="raced@example.test")
    # As on PostgreSQL when another transaction took the address after our check: only the UNIQUE index sees it.
    monkeypatch.setattr(User, "by_email", classmethod(lambda cls, email: None))
    resp = logged_in.post(f"/email-change/{token}")
    assert resp.status_code == 410 and "Another login already uses that address" in resp.get_data(as_text=True)
    assert User.get(User.customer == customer.id).email == customer.email
