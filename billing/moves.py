"""Payments announce their moves; receipts, autopay and notices listen.

The state machine (billing.payments) calls ``announce(payment_id, status)`` inside the transaction that
made the move, and never imports its listeners. They are named here, as "module:function", and loaded
on the first announcement, so that every process (the web app, a cron command, a script) has the same
ones whatever it happened to import, and the import graph of billing/ stays free of cycles.
"""
import importlib

# Queues the receipt or ACH emails and keeps autopay's records (billing/autopay.py).
LISTENERS = ("billing.autopay:payment_moved",)
_loaded = []


def _listeners():
    if not _loaded:
        for name in LISTENERS:
            module, function = name.split(":")
            _loaded.append(getattr(importlib.import_module(module), function))
    return _loaded


def announce(payment_id, status):
    """Tell every listener that a payment moved to ``status`` (call inside the move's transaction)."""
    for listener in _listeners():
        listener(payment_id, status)
