"""The processor's own pages, as the rest of the portal reaches them.

Each processor names, in ``Processor.pages``, the views module that holds its pages (the card and bank
entry window, anything its window posts to, its own commands). That module provides:

    bp                                     a Blueprint, registered only while that processor is configured
    csp_sources(config) -> str             origins its window loads from (added to the CSP), "" for none
    init_app(app)                          its commands and background workers (may do nothing)
    payment_window_url(payment, state, *, mode, back, paylink_token=None) -> str
    setup_window_url(setup, state, *, mode, back) -> str
    INLINE_IN_PAGE (optional, False)       True when its window's inline mode is a fragment that the portal page
                                           mounts in itself (portal.js loads the scripts its root names in
                                           data-load), rather than a page for the portal's frame

``state`` is the intent's IntentState (from open_intent / retrieve_setup_intent), ``mode`` one of
WINDOW_MODES, ``back`` the portal page that shows the result, and ``paylink_token`` the pay link the
payment was started through (its window is then reached through the link rather than a login).
Views ask for these URLs here and never ask which processor is configured.
"""
import importlib

from flask import current_app

from billing.processors import WINDOW_MODES


def load(processor):
    """The processor's pages module."""
    return importlib.import_module(processor.pages)


def init_app(app):
    """Register the configured processor's blueprint and let its pages set themselves up."""
    pages = load(app.extensions["processor"])
    app.extensions["processor_pages"] = pages
    app.register_blueprint(pages.bp)
    pages.init_app(app)
    app.add_template_global(lambda: getattr(pages, "INLINE_IN_PAGE", False), "inline_in_page")
    return pages


def _pages():
    return current_app.extensions["processor_pages"]


def payment_windows(payment, state, back, paylink_token=None):
    """The entry window of one payment in every mode: {"popup": url, "inline": url, "page": url}."""
    return {mode: _pages().payment_window_url(payment, state, mode=mode, back=back, paylink_token=paylink_token)
            for mode in WINDOW_MODES}


def setup_windows(setup, state, back):
    """The window that saves a method, in every mode."""
    return {mode: _pages().setup_window_url(setup, state, mode=mode, back=back) for mode in WINDOW_MODES}
