"""The ISP's portal settings: checking the staff form and the logo, and saving them."""
import base64
import hashlib
import re

from billing import accounts, bounds, fees, money
from db import models, write_tx
from db.models import Isp, utcnow

# Small: the logo is on every page, and a slow rural link pays for each KB (see bench/RESULTS.md).
MAX_LOGO_BYTES = 12 * 1024
# Raster images only, recognised by their first bytes: SVG can carry script.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"))
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_URL = re.compile(r"^https?://[^\s<>\"']+$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
TEXT_FIELDS = ("name", "support_phone", "support_email", "help_url", "chat_url", "accent_color", "invite_subject")
FLAGS = ("show_invoices", "show_payments", "show_statement", "accept_card", "accept_ach", "allow_prepay",
         "require_staff_2fa", "offer_spanish")
LANGUAGES = ("en", "es")  # the portal's languages (views/i18n.py); Spanish can be turned off


class SettingsErrors(Exception):
    """{field: message} for the settings form."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def form_values(isp):
    """The settings form's values for the current row."""
    values = {k: getattr(isp, k) for k in TEXT_FIELDS + FLAGS}
    values["allow_prepay"] = isp.allow_prepay and isp.max_prepay_cents > 0
    values.update(
        invite_text=isp.invite_text, address=isp.address, default_language=isp.default_language,
        **{f"{t}_fee_percent": fees.percent_text(getattr(isp, f"{t}_fee_bp")) if getattr(isp, f"{t}_fee_bp") else ""
           for t in ("card", "ach")},
        **{f"{t}_fee_fixed": money.cents_to_input(getattr(isp, f"{t}_fee_fixed_cents"))
           if getattr(isp, f"{t}_fee_fixed_cents") else "" for t in ("card", "ach")}, autopay_days_before_due=str(autopay_days()),
        min_payment=money.cents_to_input(isp.min_payment_cents),
        max_payment=money.cents_to_input(isp.max_payment_cents) if isp.max_payment_cents else "",
        max_prepay=money.cents_to_input(isp.max_prepay_cents) if isp.max_prepay_cents else "",
    )
    return values


def _cents(form, key, errors, required=False):
    text = (form.get(key) or "").strip()
    if not text:
        if required:
            errors[key] = "Enter an amount, like 1.00."
        return 0
    try:
        return money.parse_amount(text)
    except money.AmountError as e:
        errors[key] = str(e)
        return 0


def _fee_fields(form, kind, data, errors):
    """The convenience fee for one payment type: a percentage and/or a fixed amount; empty (or 0) is none."""
    try:
        data[f"{kind}_fee_bp"] = fees.parse_percent(form.get(f"{kind}_fee_percent"))
    except ValueError as e:
        errors[f"{kind}_fee_percent"] = str(e)
    text = (form.get(f"{kind}_fee_fixed") or "").strip()
    cents = 0
    if text and text.lstrip("$") not in ("0", "0.0", "0.00"):
        cents = _cents(form, f"{kind}_fee_fixed", errors)
        if cents > fees.MAX_FIXED_CENTS:
            errors[f"{kind}_fee_fixed"] = f"The fixed fee can be at most {money.format_money(fees.MAX_FIXED_CENTS)}."
    data[f"{kind}_fee_fixed_cents"] = cents


def clean(form):
    """Checked settings from the staff form, or SettingsErrors with a message per field."""
    errors = {}
    data = {k: (form.get(k) or "").strip() for k in TEXT_FIELDS}
    data["invite_text"] = (form.get("invite_text") or "").strip().replace("\r\n", "\n")
    data["address"] = "\n".join(line.strip() for line in (form.get("address") or "").strip().splitlines()
                                if line.strip())
    if len(data["address"]) > 255 or data["address"].count("\n") > 3:
        errors["address"] = "Keep the address to 4 lines and 255 characters."
    if not data["name"]:
        errors["name"] = "Enter the name customers know you by."
    for key in TEXT_FIELDS:
        if len(data[key]) > 255:
            errors[key] = "This is too long (255 characters at most)."
        elif bounds.line_problem(data[key]):
            errors[key] = "Use one line of text, without line breaks."
    if len(data["invite_text"]) > 5000:
        errors["invite_text"] = "This is too long (5,000 characters at most)."
    for key in ("help_url", "chat_url"):
        if data[key] and not _URL.match(data[key]):
            errors[key] = "Enter a full web address starting with https://"
    if data["support_email"] and not _EMAIL.match(data["support_email"]):
        errors["support_email"] = "Enter an email address, like help@example.com."
    if data["accent_color"] and not _COLOR.match(data["accent_color"]):
        errors["accent_color"] = "Enter a colour as # and 6 hex digits, like #0b5cad."
    data["accent_color"] = data["accent_color"].lower()
    for key in FLAGS:
        data[key] = form.get(key) in ("1", "on", "true", "yes")
    data["default_language"] = form.get("default_language") or "en"
    if data["default_language"] not in LANGUAGES:
        errors["default_language"] = "Choose English or Spanish."
    elif data["default_language"] == "es" and not data["offer_spanish"]:
        errors["default_language"] = "Spanish is turned off: offer it, or make English the default."
    if not (data["accept_card"] or data["accept_ach"]):
        errors["accept_card"] = "Offer at least one payment type."
    if not (data["show_invoices"] or data["show_payments"]):
        errors["show_invoices"] = "Show at least the Invoices or the Payments tab, so customers can pay."
    data["min_payment_cents"] = _cents(form, "min_payment", errors, required=True)
    if "min_payment" not in errors and data["min_payment_cents"] < money.SMALLEST_CHARGE_CENTS:
        errors["min_payment"] = (f"The minimum payment must be at least "
                                 f"{money.format_money(money.SMALLEST_CHARGE_CENTS)}: "
                                 "no processor takes a smaller charge.")
    data["max_payment_cents"] = _cents(form, "max_payment", errors)
    data["max_prepay_cents"] = _cents(form, "max_prepay", errors) if data["allow_prepay"] else 0
    if data["allow_prepay"] and not data["max_prepay_cents"] and "max_prepay" not in errors:
        errors["max_prepay"] = "Enter the most a customer may pay beyond their balance, or untick the box above."
    if data["max_payment_cents"] and data["max_payment_cents"] < data["min_payment_cents"]:
        errors["max_payment"] = "The maximum must be at least the minimum payment."
    for kind in ("card", "ach"):
        _fee_fields(form, kind, data, errors)
    days = (form.get("autopay_days_before_due") or "").strip()
    if not re.match(r"^[0-9]{1,2}$", days, re.ASCII) or int(days) > 28:
        errors["autopay_days_before_due"] = "Enter a whole number of days from 0 (on the due date) to 28."
    else:
        data["autopay_days_before_due"] = int(days)
    if errors:
        raise SettingsErrors(errors)
    return data


def save(form, actor="staff"):
    """Check and store the settings; returns the updated Isp row."""
    data = clean(form)
    with write_tx():
        isp = Isp.current()
        if isp is None:
            isp = Isp.create(name=data["name"])
        days = data.pop("autopay_days_before_due")
        changed = sorted(k for k, v in data.items() if getattr(isp, k) != v)
        if days != autopay_days():
            changed.append("autopay_days_before_due")
            _set_autopay_days(days)
        Isp.update(**data).where(Isp.id == isp.id).execute()
        accounts.audit(actor, "settings.updated", "isp", isp.id, fields=changed)
    return Isp.get_by_id(isp.id)


def check_logo(data):
    """The MIME type of an acceptable logo, or SettingsErrors."""
    if not data:
        raise SettingsErrors({"logo": "Choose an image file."})
    if len(data) > MAX_LOGO_BYTES:
        raise SettingsErrors({"logo": f"The logo must be {MAX_LOGO_BYTES // 1024} KB or smaller."})
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise SettingsErrors({"logo": "Upload a PNG, JPEG, GIF or WebP image."})


def save_logo(data, actor="staff"):
    """Store a checked logo (or remove it with ``data=None``)."""
    mime = check_logo(data) if data is not None else ""
    encoded = base64.b64encode(data).decode() if data is not None else ""
    with write_tx():
        isp = Isp.current()
        Isp.update(logo_type=mime, logo_data=encoded).where(Isp.id == isp.id).execute()
        accounts.audit(actor, "settings.logo" if data is not None else "settings.logo_removed", "isp", isp.id,
                       bytes=len(data or b""))


def logo(isp):
    """(bytes, mime) of the stored logo, or None."""
    if not isp.logo_type:
        return None
    return base64.b64decode(isp.logo_data), isp.logo_type


def offered_method_types(isp, all_types):
    """The payment types (from ``all_types``) this ISP accepts."""
    allowed = {"card": isp.accept_card, "ach": isp.accept_ach}
    return {k: v for k, v in all_types.items() if allowed.get(k, True)}


def _policy_model():
    # Autopay's own settings row (billing.autopay) holds the timing; the Settings page edits it.
    return getattr(models, "AutopayPolicy", None)


def autopay_days():
    """Days before the due date that autopay charges (0: on the due date)."""
    policy = _policy_model()
    return policy.current().days_before if policy is not None else 0


def _set_autopay_days(days):
    policy = _policy_model()
    if policy is None:
        return
    row = policy.select().order_by(policy.id).first()
    if row is None:
        policy.create(days_before=days, updated_at=utcnow())
    else:
        policy.update(days_before=days, updated_at=utcnow()).where(policy.id == row.id).execute()


def valid_color(value):
    """True for a #rrggbb colour (the only form written into CSS)."""
    return bool(_COLOR.match(value or ""))


def accent_css(color):
    """The stylesheet rule for an accent colour, or '' (only a checked #rrggbb is ever written into CSS)."""
    return f":root{{--accent:{color}}}" if valid_color(color) else ""


def logo_digest(isp):
    """A short hash of the stored logo, for its cache-busting URL ('' when there is none)."""
    if not isp.logo_type:
        return ""
    return hashlib.sha256(isp.logo_data.encode()).hexdigest()[:16]
