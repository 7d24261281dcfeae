"""The sandbox card payment in real Chromium, on an emulated slow link (DevTools protocol).

Every page of the browser context (the portal and the processor's pop-up) gets the same
``Network.emulateNetworkConditions``; the customer types and clicks with no pauses, so the time from
opening the login page to "Payment was successful" is the flow's network time (plus the server's
and the browser's own work, which are small next to it).
"""
import time

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# kbps and round-trip time as in the issue; CDP wants bytes per second.
PROFILES = {
    "none": None,
    "Slow 3G (400 kbps, 400 ms RTT)": {"kbps": 400, "rtt": 400},
    "EDGE (240 kbps, 840 ms RTT)": {"kbps": 240, "rtt": 840},
}
STEP_TIMEOUT_MS = 60_000


def _conditions(profile):
    bps = profile["kbps"] * 1000 / 8
    return {"offline": False, "latency": profile["rtt"], "downloadThroughput": bps, "uploadThroughput": bps}


def pay_by_card(browser, base_url, email, password, profile):
    """Log in and pay the balance by card through the pop-up; returns seconds, requests and bytes."""
    context = browser.new_context()
    stats = {"requests": 0, "from_cache": 0, "bytes": 0, "errors": [], "urls": []}

    def sent(request):
        if not request["url"].startswith("data:"):
            stats["requests"] += 1
            stats["urls"].append(f'{request["method"]} {request["url"].replace(base_url, "")[:40]}')

    def cached(response):
        if response.get("fromDiskCache") or response.get("fromPrefetchCache"):
            stats["from_cache"] += 1

    def attach(page):
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        if profile:
            cdp.send("Network.emulateNetworkConditions", _conditions(profile))
        cdp.on("Network.requestWillBeSent", lambda e: sent(e["request"]))
        cdp.on("Network.responseReceived", lambda e: cached(e["response"]))
        cdp.on("Network.loadingFinished", lambda e: stats.__setitem__("bytes", stats["bytes"] + e["encodedDataLength"]))
        page.on("pageerror", lambda exc: stats["errors"].append(str(exc)))

    try:
        page = context.new_page()
        attach(page)  # before the first request: the "page" event may arrive too late for it
        page.set_default_timeout(STEP_TIMEOUT_MS)
        marks = []
        t0 = time.perf_counter()

        def mark(label):
            marks.append((label, round(time.perf_counter() - t0, 2)))

        page.goto(base_url + "/login")
        login_loaded = time.perf_counter() - t0
        mark("login page loaded")
        fcp = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button.primary")
        page.wait_for_url(base_url + "/")
        mark("home")
        page.click("nav.tabs >> text=Payments")
        page.wait_for_selector("#pay-step >> text=Choose your payment method")
        mark("payment method")
        page.check("input[name=method_type][value=card]")
        page.click("#pay-step button.primary")
        page.wait_for_selector("#pay-step >> text=Billing Information")
        mark("billing")
        with page.expect_popup(timeout=STEP_TIMEOUT_MS) as popup_info:
            page.click("#pay-step button.primary")
        popup = popup_info.value
        attach(popup)  # still blank: its address arrives with the next htmx response
        popup.set_default_timeout(STEP_TIMEOUT_MS)
        popup.wait_for_selector("#number")
        mark("pop-up card form")
        popup.fill("#number", "4242 4242 4242 4242")
        popup.fill("#expiry", "12 / 34")
        popup.fill("#cvc", "123")
        popup.fill("#zip", "78701")
        popup.click("button.primary")
        popup.wait_for_event("close")
        mark("pop-up closed")
        page.wait_for_selector("#pay-step >> text=Payment was successful")
        seconds = time.perf_counter() - t0
        mark("payment was successful")
    finally:
        context.close()
    return {"seconds": seconds, "login_seconds": login_loaded, "login_fcp_ms": fcp, "marks": marks, **stats}


def run(base_url, customers, password):
    """Each profile once, each with its own customer and a cold cache; {profile: figures}."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for (name, profile), email in zip(PROFILES.items(), customers):
                results[name] = pay_by_card(browser, base_url, email, password, profile)
        finally:
            browser.close()
    return results
