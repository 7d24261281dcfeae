"""Static check of the Stripe integration: every Stripe call's parameters against the typed parameters that
the pinned ``stripe`` SDK ships (mypy)."""
import os
import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE = ROOT / "billing" / "processors" / "stripe.py"


def test_every_stripe_call_matches_the_sdks_typed_parameters_and_a_wrong_key_is_caught(tmp_path):
    # The check must be able to fail: a copy of the module that sends the parameter Stripe removed on this API
    # version (payment_method_types, "Removes the payment method types parameter", 2026-09-30.endive) and an
    # invented one is checked in the same run, and must be the only thing reported.
    source = MODULE.read_text()
    assert source.count('"allowed_payment_method_types"') >= 3 and '"usage": "off_session",' in source
    mutant = tmp_path / "stripe_mutant.py"
    mutant.write_text(source.replace('"allowed_payment_method_types"', '"payment_method_types"', 1)
                      .replace('"usage": "off_session",', '"usage": "off_session", "not_a_param": 1,', 1))
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"),
                          "--cache-dir", str(ROOT / ".mypy_cache"), str(MODULE), str(mutant)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert errors, report
    # (mypy's cache may name the copy by an earlier run's folder when its content is unchanged: match the file name)
    assert all(line.split(":", 1)[0].endswith("/stripe_mutant.py") for line in errors), report  # the real one is clean
    assert any('Extra key "payment_method_types"' in line for line in errors), report
    assert any('Extra key "not_a_param"' in line for line in errors), report


# Stripe is ending support for Card and Source objects and the Tokens API: the portal's cards are PaymentMethods.
LEGACY = ("createToken", "createSource", "handleCardPayment", "retrieveSource", ".tokens.", "payment_sources",
          ".sources.", "create_source", '"source":', "'source':", "tok_", "src_")


def legacy_calls(text):
    """The legacy Stripe calls (tokens, sources, Card objects) named in a file's text."""
    return [name for name in LEGACY if name in text]


def test_no_token_source_or_card_object_call_remains():
    assert legacy_calls('stripe.createToken(card)') == ["createToken"]  # the scan finds one when it is there
    assert legacy_calls('client.v1.customers.payment_sources.create(cus, params={"source": t})') == [
        "payment_sources", '"source":']
    found = {}
    for folder, pattern in (("billing", "*.py"), ("views", "*.py"), ("static", "*.js"), ("templates", "*.html")):
        for path in (ROOT / folder).rglob(pattern):
            if path.name.startswith("htmx"):
                continue
            names = legacy_calls(path.read_text())
            if names:
                found[str(path.relative_to(ROOT))] = names
    assert found == {}
