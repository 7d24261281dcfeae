"""Static checks of the Stripe integration: every Stripe call's parameters against the typed parameters that
the pinned ``stripe`` SDK ships (mypy), and Stripe.js pinned to the release of the SDK's API version."""
import os
import pathlib
import subprocess
import sys

import stripe

from billing.processors import stripe as stripe_processor

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE = ROOT / "billing" / "processors" / "stripe.py"


def test_every_stripe_call_matches_the_sdks_typed_parameters_and_a_wrong_key_is_caught(tmp_path):
    # The check must be able to fail: a copy of the module that sends the parameter Stripe removed on this API
    # version (payment_method_types, "Removes the payment method types parameter", 2026-09-30.endive) and an
    # invented one is checked in the same run, and must be the only thing reported.
    source = MODULE.read_text()
    assert source.count('"allowed_payment_method_types"') >= 2
    mutant = tmp_path / "stripe_mutant.py"
    mutant.write_text(source.replace('"allowed_payment_method_types"', '"payment_method_types"', 1)
                      .replace('"use_stripe_sdk": True}', '"use_stripe_sdk": True, "not_a_param": 1}', 1))
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


def test_stripe_js_is_pinned_to_the_release_of_the_sdks_api_version():
    assert stripe.api_version.endswith("." + stripe_processor.STRIPE_JS_RELEASE)
    assert stripe_processor.DEFAULT_JS_URL == f"https://js.stripe.com/{stripe_processor.STRIPE_JS_RELEASE}/stripe.js"
    proc = stripe_processor.StripeProcessor.from_config({
        "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_PUBLISHABLE_KEY": "pk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"})
    assert proc.js_url == stripe_processor.DEFAULT_JS_URL and "/v3" not in proc.js_url
