"""Security headers: HSTS only over https, no-store on account pages, a script policy without
unsafe-inline/unsafe-eval, and htmx configured with eval and script tags off and same-origin requests only."""
import json
import re


def test_hsts_is_sent_over_https_only(logged_in):
    assert "Strict-Transport-Security" not in logged_in.get("/").headers
    resp = logged_in.client.get("/", base_url="https://localhost")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_account_pages_are_not_stored_and_scripts_need_no_unsafe_source(logged_in):
    resp = logged_in.get("/invoices")
    assert resp.headers["Cache-Control"] == "no-store"
    script_src = re.search(r"script-src ([^;]*)", resp.headers["Content-Security-Policy"]).group(1)
    assert "'self'" in script_src and "unsafe-inline" not in script_src and "unsafe-eval" not in script_src


def test_htmx_runs_without_eval_or_script_tags_and_only_to_the_portal(logged_in):
    page = logged_in.get("/").get_data(as_text=True)
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'", page).group(1))
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert config["selfRequestsOnly"] is True and config["historyCacheSize"] == 0
    assert "<script>" not in page  # no inline script anywhere
