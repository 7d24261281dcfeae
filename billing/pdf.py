"""PDF invoices, statements and receipts, drawn with ReportLab.

Text-based and small on purpose: the PDF standard's built-in Helvetica (nothing embedded, no web fonts),
compressed page streams, and the ISP's small logo as the only image, so a document is a few KB, its
text can be searched and copied, and ``pdftotext`` reads it back (the tests do). Why ReportLab over
fpdf2 and WeasyPrint, with the figures measured: see the README's "Bills and receipts" section.

The built-in fonts cover Windows-1252 (Latin letters with accents, the euro sign, dashes). Text outside it is
written as its closest Windows-1252 form (``cp1252_text``) rather than as "?" or an empty box: accents the
fonts lack are dropped ("Nguyễn" -> "Nguyen", "Łódź" -> "Lodz"), a small table covers letters that do not
decompose (ł, đ, ħ, ı, ŋ …), Greek and Cyrillic are romanized, arrows and math signs get ASCII forms
("→" -> "->"), and emoji and other pictographs are left out. Only a letter of a script with no Latin form
here (CJK, Arabic, Hebrew, Indic …) is still "?": that would need an embedded font, which PDFs here avoid.

Each document is written in one language, given as a billing.language.Speaker (English when none is given):
its words come from the catalogue, its money and dates from the language's locale.
"""
import io
import re
import unicodedata

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table
from xml.sax.saxutils import escape

from billing import fees, receipts, settings
from billing.language import Speaker
from billing.words import N_

_BASE = ParagraphStyle("base", fontName="Helvetica", fontSize=9.5, leading=12.5)
_SMALL = ParagraphStyle("small", parent=_BASE, fontSize=8.5, leading=11, textColor=colors.HexColor("#5b6570"))
_NAME = ParagraphStyle("name", parent=_BASE, fontName="Helvetica-Bold", fontSize=14, leading=17)
_TITLE = ParagraphStyle("title", parent=_BASE, fontName="Helvetica-Bold", fontSize=16, leading=20, spaceBefore=14,
                        spaceAfter=6)
_RIGHT = ParagraphStyle("right", parent=_BASE, alignment=TA_RIGHT)
_LINE = colors.HexColor("#d5dae0")
LOGO_HEIGHT = 0.5 * inch


# Letters that do not decompose into a base letter and accents, and signs with a plain-text form.
_LATIN = {
    "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ı": "i", "ŀ": "l", "Ŀ": "L", "ŋ": "n",
    "Ŋ": "N", "ŧ": "t", "Ŧ": "T", "ĸ": "k", "ſ": "s", "ə": "e", "Ə": "E", "ǝ": "e", "Ǝ": "E", "ɛ": "e",
    "Ɛ": "E", "ɔ": "o", "Ɔ": "O", "ʻ": "'", "ʼ": "'", "ƀ": "b", "ɨ": "i", "ʉ": "u", "ĳ": "ij", "Ĳ": "IJ",
    "ő": "ö", "Ő": "Ö", "ű": "ü", "Ű": "Ü",  # Hungarian: the umlaut is closer than no accent
}
_SIGNS = {
    "→": "->", "←": "<-", "↔": "<->", "⇒": "=>", "⇐": "<=", "⇔": "<=>", "↑": "^", "↓": "v",
    "≤": "<=", "≥": ">=", "≠": "!=", "≈": "~", "−": "-", "∞": "inf", "√": "sqrt", "∙": "·", "⋅": "·",
    "‐": "-", "‑": "-", "‒": "-", "―": "—", "′": "'", "″": '"', "✓": "v", "✔": "v",
    "✗": "x", "✘": "x", "№": "No.", "℃": "°C", "℉": "°F",
}
_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяєіїґў",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
     "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "ye", "i", "yi", "g", "u"]))
_GREEK = dict(zip(
    "αβγδεζηθικλμνξοπρσςτυφχψω",
    ["a", "v", "g", "d", "e", "z", "i", "th", "i", "k", "l", "m", "n", "x", "o", "p", "r", "s", "s", "t", "y",
     "f", "ch", "ps", "o"]))
_ROMAN = {**_CYRILLIC, **_GREEK}


def _fits(text):
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _closest(ch, depth=0):
    """The closest Windows-1252 text for one character outside it ('' for a pictograph, '?' if none)."""
    if _fits(ch):
        return ch
    if ch in _LATIN:
        return _LATIN[ch]
    if ch in _SIGNS:
        return _SIGNS[ch]
    low = ch.lower()
    if low in _ROMAN:
        roman = _ROMAN[low]
        return roman.capitalize() if ch != low else roman
    parts = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if parts and parts != ch and depth < 3:  # accents dropped, or a compatibility form (ligature, full width)
        return "".join(_closest(c, depth + 1) for c in parts)
    kind = unicodedata.category(ch)
    if kind == "Zs":
        return " "
    if kind[0] in "LN":
        return "?"  # a letter of a script with no Latin form here (CJK, Arabic …)
    return ""  # emoji, pictographs, joiners and stray accents: nothing to print


def cp1252_text(value):
    """``value`` as the closest text the built-in fonts can draw (Windows-1252), never '?' for a Latin,
    Greek or Cyrillic letter."""
    text = unicodedata.normalize("NFC", str(value))  # an accent typed as its own character joins its letter
    if _fits(text):
        return text
    out = "".join(_closest(ch) for ch in text)
    return re.sub(r"(?<=\S) {2,}(?=\S)", " ", out).strip() if out != text else out


def _text(value):
    """Text safe for a Paragraph: escaped, and limited to what the built-in fonts can draw."""
    return escape(cp1252_text(value))


class _Builder:
    """One document: the ISP's letterhead, then whatever the caller adds, rendered to PDF bytes."""

    def __init__(self, isp, title, sp):
        self.isp = isp
        self.title = title
        self.sp = sp
        self.money = lambda cents: sp.money(cents, isp.currency)
        self.flow = [self._letterhead(), Paragraph(_text(title), _TITLE)]

    def date(self, value):
        return self.sp.date(value) if value else ""

    def _letterhead(self):
        lines = [Paragraph(_text(self.isp.name), _NAME)]
        for line in (self.isp.address or "").splitlines():
            lines.append(Paragraph(_text(line), _BASE))
        contact = " - ".join(x for x in (self.isp.support_phone, self.isp.support_email) if x)
        if contact:
            lines.append(Paragraph(_text(self.sp.say("Support: %(contact)s", contact=contact)), _SMALL))
        if self.isp.help_url:
            lines.append(Paragraph(_text(self.isp.help_url), _SMALL))
        logo = self._logo()
        if logo is None:
            return Table([[lines]], colWidths=["100%"], style=[("LEFTPADDING", (0, 0), (-1, -1), 0)])
        return Table([[logo, lines]], colWidths=[logo.drawWidth + 12, None],
                     style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])

    def _logo(self):
        found = settings.logo(self.isp) if self.isp.id else None
        if found is None:
            return None
        data = io.BytesIO(found[0])
        try:
            width, height = ImageReader(data).getSize()
        except Exception:  # noqa: BLE001 - a logo the imaging library cannot read is left off, never a failure
            return None
        data.seek(0)
        return Image(data, width=LOGO_HEIGHT * width / height, height=LOGO_HEIGHT)

    def para(self, text, style=_BASE):
        self.flow.append(Paragraph(_text(text), style))

    def space(self, points=8):
        self.flow.append(Spacer(1, points))

    def facts(self, pairs):
        """Label / value rows, like the pages' <dl class="facts">."""
        rows = [[Paragraph(_text(k), _SMALL), Paragraph(_text(v), _BASE)] for k, v in pairs if v not in (None, "")]
        self.flow.append(Table(rows, colWidths=[1.6 * inch, None], hAlign="LEFT",
                               style=[("LEFTPADDING", (0, 0), (-1, -1), 0), ("VALIGN", (0, 0), (-1, -1), "TOP")]))

    def table(self, header, rows, footer=(), widths=None, numeric_from=1):
        """A table with a repeated header row; columns from ``numeric_from`` on are right-aligned figures."""
        def cell(value, col, bold=False):
            style = _RIGHT if col >= numeric_from else _BASE
            text = _text(value)
            return Paragraph(f"<b>{text}</b>" if bold else text, style)

        data = [[cell(h, i, True) for i, h in enumerate(header)]]
        data += [[cell(v, i) for i, v in enumerate(row)] for row in rows]
        data += [[cell(v, i, True) for i, v in enumerate(row)] for row in footer]
        style = [("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                 ("LINEBELOW", (0, 1), (-1, -1), 0.3, _LINE),
                 ("VALIGN", (0, 0), (-1, -1), "TOP"),
                 ("LEFTPADDING", (0, 0), (0, -1), 0), ("RIGHTPADDING", (-1, 0), (-1, -1), 0)]
        if footer:
            style.append(("LINEABOVE", (0, len(data) - len(footer)), (-1, len(data) - len(footer)), 0.8, colors.black))
        self.flow.append(Table(data, colWidths=widths, repeatRows=1, style=style))

    def render(self):
        buf = io.BytesIO()
        doc = SimpleDocTemplate(buf, pagesize=LETTER, leftMargin=0.7 * inch, rightMargin=0.7 * inch,
                                topMargin=0.6 * inch, bottomMargin=0.7 * inch, title=self.title,
                                author=self.isp.name, subject=self.title, creator=self.isp.name,
                                pageCompression=1)
        doc.build(self.flow, onFirstPage=self._footer, onLaterPages=self._footer)
        return buf.getvalue()

    def _footer(self, canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#5b6570"))
        text = f"{self.isp.name} - {self.title} - " + self.sp.say("page %(page)s", page=doc.page)
        canvas.drawString(doc.leftMargin, 0.45 * inch, cp1252_text(text))
        canvas.restoreState()


def _customer_line(customer, sp):
    address = ", ".join(x for x in (customer.street, customer.city, f"{customer.state} {customer.zip}".strip()) if x)
    return (sp.say("%(name)s, account %(number)s", name=customer.name, number=customer.account_number)
            + (f" - {address}" if address else ""))


def invoice_pdf(isp, customer, view, lines, applied, sp=None):
    """One invoice (an accounts.InvoiceView with its lines and applied payments) as PDF bytes."""
    sp = sp or Speaker()
    say = sp.say
    inv = view.invoice
    b = _Builder(isp, say("Invoice %(number)s", number=inv.number), sp)
    b.para(_customer_line(customer, sp))
    b.space()
    period = f"{b.date(inv.period_start)} - {b.date(inv.period_end)}" if inv.period_start else ""
    b.facts([(say("Issued"), b.date(inv.issue_date)), (say("Due"), b.date(inv.due_date)),
             (say("Service period"), period), (say("Status"), sp.text(view.status.replace("_", " ").capitalize()))])
    b.space()
    footer = [(say("Total"), "", "", b.money(inv.total_cents))]
    for a in applied:
        code = receipts.format_code(a.payment.confirmation_code)
        label = (say("Payment %(ref)s (confirmation %(code)s)", ref=a.payment.ref, code=code) if code
                 else say("Payment %(ref)s", ref=a.payment.ref))
        if a.amount_cents < 0:
            footer.append((say("%(payment)s taken back", payment=label), "", "", b.money(-a.amount_cents)))
        else:
            footer.append((f"{label}, {b.date(a.created_at.date())}", "", "", "-" + b.money(a.amount_cents)))
    if view.pending_cents:
        footer.append((say("Bank payment pending"), "", "", b.money(view.pending_cents)))
    footer.append((say("Balance due"), "", "", b.money(view.balance_cents)))
    b.table((say("Description"), say("Qty"), say("Unit"), say("Amount")),
            [(ln.description, ln.quantity, b.money(ln.unit_cents), b.money(ln.amount_cents)) for ln in lines],
            footer=footer, widths=[None, 0.6 * inch, 1.1 * inch, 1.2 * inch])
    return b.render()


def statement_pdf(isp, customer, statement, sp=None):
    """An accounts.Statement for the chosen dates as PDF bytes."""
    sp = sp or Speaker()
    say = sp.say
    b = _Builder(isp, say("Account statement"), sp)
    b.para(_customer_line(customer, sp))
    b.para(say("%(start)s to %(end)s", start=b.date(statement.start), end=b.date(statement.end)))
    b.space()
    rows = [(b.date(statement.start), say("Opening balance"), "", "", b.money(statement.opening_cents))]
    rows += [(b.date(r.on), sp.text(r.description), b.money(r.charge_cents) if r.charge_cents else "",
              b.money(r.payment_cents) if r.payment_cents else "", b.money(r.balance_cents)) for r in statement.rows]
    closing = say("Closing balance (credit)") if statement.closing_cents < 0 else say("Closing balance")
    b.table((say("Date"), say("Activity"), say("Charges"), say("Payments"), say("Balance")), rows,
            footer=[("", closing, "", "", b.money(statement.closing_cents))],
            widths=[1.0 * inch, None, 1.0 * inch, 1.0 * inch, 1.1 * inch], numeric_from=2)
    return b.render()


def receipt_pdf(rec, status_label, sp=None):
    """A receipts.Receipt as PDF bytes; ``status_label`` names a payment that did not (or no longer) succeed."""
    sp = sp or Speaker()
    say = sp.say
    p = rec.payment
    b = _Builder(rec.isp, say("Payment receipt"), sp)
    if p.status != "succeeded":
        b.para(say("This payment is %(status)s.", status=sp.text(status_label).lower()), _BASE)
    fee = []
    if p.fee_cents:
        fee = [(sp.text(fees.LABELS.get(p.method_type, N_("Fee"))), b.money(p.fee_cents)),
               (say("Total charged"), b.money(p.amount_cents + p.fee_cents))]
    applied = ", ".join(f"{inv.number} {sp.money(cents, p.currency)}" for inv, cents in rec.applied)
    b.facts([(say("Confirmation code"), rec.code), (say("Amount"), sp.money(rec.amount_cents, p.currency)), *fee,
             (say("Date"), b.date(rec.paid_on)), (say("Method"), sp.text(rec.method)),
             (say("Account"), say("%(name)s, account %(number)s", name=rec.customer.name,
                                  number=rec.customer.account_number)),
             (say("Reference"), p.ref), (say("Applied to") if p.status == "succeeded" else say("For"), applied)])
    b.space(12)
    b.para(say("Read the confirmation code to support if you call about this payment."), _SMALL)
    return b.render()


def filename(kind, name):
    """A download's file name from its kind and its own number, code or dates: ``invoice-INV-7.pdf``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(name))[:60]
    return f"{kind}-{safe}.pdf"
