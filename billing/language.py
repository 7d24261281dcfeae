"""The customer's language outside a request: for email built by cron or queued in billing/, and for PDFs.

Flask-Babel serves the pages; this module is its Flask-free counterpart, on Babel's own
``babel.support.Translations``, loaded from the same translations folder, and Babel's locale formats.
"""
import functools
import pathlib

from babel.support import NullTranslations, Translations

from billing.words import translate

TRANSLATIONS = pathlib.Path(__file__).resolve().parent.parent / "translations"
LANGUAGES = ("en", "es")
# The US variant of each language: the ISP bills in dollars (see views/i18n.py).
LOCALES = {"en": "en_US", "es": "es_US"}


@functools.lru_cache(maxsize=None)
def translations(lang):
    """The compiled catalogue for ``lang`` (English: none, the code's own words)."""
    if lang not in LANGUAGES or lang == "en":
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [lang])


def for_customer(customer, isp=None):
    """The language to write to this customer in: theirs when the ISP offers it, else the ISP's default."""
    from db.models import Isp

    isp = isp or Isp.current()
    offered = ("en", "es") if (isp is None or isp.offer_spanish) else ("en",)
    chosen = getattr(customer, "language", None)
    if chosen in offered:
        return chosen
    default = isp.default_language if isp is not None else "en"
    return default if default in offered else "en"


class Speaker:
    """Words, money and dates in one language: ``say("Pay %(amount)s", amount=...)``, ``money``, ``date``."""

    def __init__(self, lang="en"):
        self.lang = lang if lang in LANGUAGES else "en"
        self.locale = LOCALES[self.lang]
        self._t = translations(self.lang)

    def gettext(self, msgid):
        """The catalogue's words for ``msgid`` (``msgid`` itself when there are none)."""
        return self._t.ugettext(msgid)

    def say(self, msgid, **params):
        """``msgid`` translated, then filled in with ``params``."""
        text = self.gettext(msgid)
        return text % params if params else text

    def ngettext(self, singular, plural, num, **params):
        """The singular or plural form for ``num``, translated and filled in."""
        return self._t.ungettext(singular, plural, num) % dict(params, num=num)

    def text(self, value):
        """A word or :class:`billing.words.Text` made in billing/, in this language."""
        return translate(value, self.gettext)

    def money(self, cents, currency="USD"):
        """Cents as this language writes money (English: billing.money's own form, as the emails always had)."""
        from billing import money

        return money.format_money(cents, currency, locale=None if self.lang == "en" else self.locale)

    def date(self, day, format="medium"):
        """A date as this language writes it: medium "Mar 5, 2026" / "5 mar 2026", long "March 5, 2026" /
        "5 de marzo de 2026"."""
        from babel.dates import format_date

        return format_date(day, format=format, locale=self.locale)

    def dates(self, day, skeleton):
        """A date from a CLDR skeleton: "MMMd" is "Mar 5" / "5 mar", "yMMMM" is "March 2026" / "marzo de 2026"."""
        from babel.dates import format_skeleton

        return format_skeleton(skeleton, day, locale=self.locale)


def speaker_for(customer, isp=None):
    """A Speaker in the customer's language (theirs, else the ISP's default)."""
    return Speaker(for_customer(customer, isp))
