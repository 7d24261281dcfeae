// Stripe's windows: paying (#stripe-window) and saving a card or bank account (#stripe-setup).
// Stripe's Payment Element collects the details in this page (never in an iframe of ours) and turns them into
// a ConfirmationToken; this script posts only that id to the portal, whose server confirms with Stripe and
// answers what comes next. When the bank wants its check, Stripe.js runs it here at once (handleNextAction);
// the portal then asks Stripe, never this page, where things stand.
(function () {
  "use strict";
  var root = document.getElementById("stripe-window") || document.getElementById("stripe-setup");
  if (!root) return;
  var d = root.dataset;
  var setup = root.id === "stripe-setup";
  var words = setup ? {
    unloaded: "The form could not load. Check your connection and reload this window.",
    unreached: "We could not reach the payment service. Nothing was saved; please try again.",
    refused: "The details were not saved.",
    accept: "Accept the authorization to save this bank account."
  } : {
    unloaded: "The payment form could not load. Check your connection and reload this window.",
    unreached: "We could not reach the payment service. Nothing was charged; please try again.",
    refused: "The payment did not go through.",
    accept: "Accept the authorization to pay by bank account."
  };

  function byId(id) { return document.getElementById(id); }
  function show(text) {
    var m = byId("stripe-message");
    if (!m) return;
    m.textContent = text || "";
    m.hidden = !text;
  }

  function finish() {
    var form = byId("stripe-form");
    if (form) form.hidden = true;
    byId("stripe-done").hidden = false;
    if (d.mode === "popup" && window.opener) window.close();
    else if (d.mode === "page") window.location.assign(d.backUrl);
  }

  // A bank account typed by its numbers: Stripe verifies it with two small deposits, on its own page.
  function verify(url) {
    var form = byId("stripe-form");
    var box = byId("stripe-verify");
    for (var i = 0; form && i < form.children.length; i++) {
      if (form.children[i] !== box) form.children[i].hidden = true;
    }
    if (url) byId("stripe-verify-link").href = url;
    box.hidden = false;
  }

  if (root.hasAttribute("data-finished")) { finish(); return; }
  if (!d.publishableKey) return; // finished, with something to read (a bank account to verify): nothing to run
  if (typeof window.Stripe !== "function") { show(words.unloaded); return; }

  var stripe = window.Stripe(d.publishableKey);
  var form = byId("stripe-form");
  var button = byId(setup ? "stripe-save" : "stripe-pay");
  var busy = false;

  function ready() { busy = false; button.disabled = false; }
  function start() { busy = true; button.disabled = true; show(""); }

  function post(url, data) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": d.csrf, "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams(data || {}).toString()
    }).then(function (r) { return r.json(); });
  }

  // The bank's check (3-D Secure) for the intent, here and now; then the portal asks Stripe how it went.
  function authenticate() {
    busy = true; button.disabled = true;
    return stripe.handleNextAction({clientSecret: d.clientSecret}).then(function () {
      return post(d.syncUrl).then(function (a) { return handle(a, true); });
    });
  }

  // The server's answer: done, the bank's check to run here, deposits to verify, or a message and another try.
  function handle(answer, checked) {
    if (answer.next_action === "verify_microdeposits" || answer.verify_url) { verify(answer.verify_url); return; }
    if (answer.done) { finish(); return; }
    if (answer.next_action === "authenticate" && !checked) return authenticate();
    show(answer.message || words.refused);
    ready();
  }
  function failed() { show(words.unreached); ready(); }

  if (d.nextAction === "authenticate") { // the bank asked before the window opened (a saved method)
    authenticate().catch(failed);
  }

  if (d.savedUrl) { // pay with the saved method: nothing to type
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return;
      start();
      post(d.savedUrl).then(function (a) { return handle(a, false); }).catch(failed);
    });
    return;
  }

  var options = JSON.parse(d.element);
  if (!options.setupFutureUsage) delete options.setupFutureUsage;
  var elements = stripe.elements(options);
  // The details we already have (the Billing Information step) are passed on, and the Element does not ask for
  // them again; it asks only for what it needs and we do not have (a pay link passes only what its payer typed).
  var billing = JSON.parse(d.billing);
  var asked = {};
  ["name", "email", "phone", "address"].forEach(function (k) { asked[k] = billing[k] ? "never" : "auto"; });
  var element = elements.create("payment", {
    fields: {billingDetails: asked},
    wallets: {applePay: "never", googlePay: "never"},
    terms: {usBankAccount: "never"} // the portal shows (and records) its own debit authorization below
  });
  element.mount("#payment-element");
  element.on("loaderror", function () { show(words.unloaded); });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (busy) return; // one click at a time; the server also never confirms a paid intent again
    var accept = byId("bank-accept");
    if (accept && !accept.checked) { show(words.accept); return; }
    start();
    elements.submit().then(function (result) {
      if (result.error) { show(result.error.message); ready(); return; }
      return stripe.createConfirmationToken({elements: elements,
                                             params: {payment_method_data: {billing_details: billing}}})
        .then(function (result) {
          if (result.error) { show(result.error.message || "Check your details."); ready(); return; }
          var data = {confirmation_token: result.confirmationToken.id};
          if (accept) data.accepted = "1";
          return post(d.confirmUrl, data).then(function (a) { return handle(a, false); });
        });
    }).catch(failed);
  });
})();
