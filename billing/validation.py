"""Checks of what people type that several forms share: one rule each, one message each."""
import re

from billing.words import N_

# An address we can send to: one @, a dot in the domain, no spaces; the length SMTP allows (RFC 5321).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
MAX_EMAIL = 254


def normal_email(text):
    """The address as we store it: trimmed and in lower case."""
    return (text or "").strip().lower()


def email_error(text):
    """Why ``text`` is not an email address we can use, or '' when it is."""
    email = normal_email(text)
    if not email:
        return N_("Enter an email address.")
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        return N_("Enter an email address like name@example.com.")
    return ""
