"""The portal's languages, through Flask-Babel: English and Spanish.

The language is the one the customer chose (kept on their account, or in a cookie before they log in),
else the best the browser asks for among those the ISP offers, else the ISP's default. Formats follow the
US variant of each language (en_US, es_US): the ISP bills in dollars, and a Spanish-speaking customer in the
US reads "$1,234.56" on the bill and types 45.00 into the amount field.
"""
from flask import Blueprint, g, has_request_context, redirect, request
from flask_babel import Babel, get_locale, get_translations
from flask_login import current_user

from billing import accounts
from billing.language import LOCALES  # the US variant of each language: one table for pages, emails, PDFs
from billing.words import Text, translate

bp = Blueprint("i18n", __name__)
babel = Babel()

LANGUAGES = {"en": "English", "es": "Español"}
COOKIE = "lang"
YEAR = 365 * 24 * 3600


def offered():
    """The language codes this ISP offers, English first."""
    from views import isp

    return ["en", "es"] if isp().offer_spanish else ["en"]


def language():
    """This request's language code."""
    if "language" in g:
        return g.language
    from views import isp

    langs = offered()
    chosen = None
    if current_user and current_user.is_authenticated and current_user.customer_id:
        chosen = current_user.user.customer.language
    chosen = chosen if chosen in langs else request.cookies.get(COOKIE)
    if chosen not in langs:
        chosen = request.accept_languages.best_match(langs)
    if chosen not in langs:
        chosen = isp().default_language if isp().default_language in langs else "en"
    g.language = chosen
    return chosen


def locale():
    """This request's Babel locale (formats): en_US or es_US; outside a request (mail, CLI), en_US."""
    return LOCALES[language()] if has_request_context() else LOCALES["en"]


@bp.route("/language", methods=["POST"])
def choose():
    """The language chooser: remember the choice (on the account when logged in) and go back to the page."""
    from views.edge import local_url

    lang = request.form.get("lang")
    back = local_url(request.form.get("next")) or "/"
    response = redirect(back, code=303)
    if lang not in offered():
        return response
    if current_user.is_authenticated and current_user.customer_id:
        accounts.set_language(current_user.customer_id, lang)
    response.set_cookie(COOKIE, lang, max_age=YEAR, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return response


def _catalogue():
    """This request's translations, found once (again only if the locale was changed, as force_locale does)."""
    if not has_request_context():
        return get_translations()
    current = get_locale()
    found = g.get("_catalogue")
    if found is None or found[0] is not current:
        found = g._catalogue = (current, get_translations())
    return found[1]


def say(value):
    """A word or Text made in billing/ in this request's language."""
    return translate(value, _catalogue().ugettext)


def _finalize(value):
    """Every ``{{ value }}`` a template shows: a Text made in billing/ (a field error, a statement line) is said
    in the page's language, so templates need not know which of their values came from billing/."""
    return say(value) if isinstance(value, Text) else value


def init_app(app):
    """Babel with the portal's locale selector, the chooser's route, and its template helpers."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    babel.init_app(app, locale_selector=locale)
    # Flask-Babel finds the catalogue again for every string a template translates (several context
    # look-ups and formatting the locale's name each time, ~5 µs; a page has 40 strings): find it once a request.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _catalogue().ugettext(s),
        ngettext=lambda s, p, n: _catalogue().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalogue().unpgettext(c, s, p, n),
    )
    app.register_blueprint(bp)
    app.jinja_env.finalize = _finalize
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, portal_language=language, offered_languages=offered, say=say)
    app.jinja_env.filters["say"] = say
