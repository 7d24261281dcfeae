// Stripe's window for saving a card or bank account (no payment). Stripe.js's own fields send the details
// straight to Stripe and confirm the SetupIntent; this page then asks the portal, which asks Stripe.
(function () {
  "use strict";
  var root = document.getElementById("stripe-setup");
  if (!root) return;
  var d = root.dataset;

  function show(text) {
    var m = document.getElementById("stripe-message");
    if (!m) return;
    m.textContent = text || "";
    m.hidden = !text;
  }

  function finish() {
    var form = document.getElementById("stripe-form");
    if (form) form.hidden = true;
    document.getElementById("stripe-done").hidden = false;
    if (d.mode === "popup" && window.opener) window.close();
    else if (d.mode === "page") window.location.assign(d.backUrl);
  }

  if (root.hasAttribute("data-finished")) { finish(); return; }
  if (typeof window.Stripe !== "function") {
    show("The form could not load. Check your connection and reload this window.");
    return;
  }

  var stripe = window.Stripe(d.publishableKey);
  var form = document.getElementById("stripe-form");
  var save = document.getElementById("stripe-save");
  var busy = false;

  function ready() { busy = false; save.disabled = false; }

  function post(url, data) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": d.csrf, "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams(data || {}).toString()
    }).then(function (r) { return r.json(); });
  }

  function handle(answer) {
    if (answer.done) { finish(); return; }
    show(answer.message || "The details were not saved.");
    ready();
  }

  function failed() {
    show("We could not reach the payment service. Nothing was saved; please try again.");
    ready();
  }

  if (d.method === "card") {
    var card = stripe.elements().create("card");
    card.mount("#card-element");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return;
      busy = true; save.disabled = true; show("");
      // Stripe.js confirms the SetupIntent, with the bank's check (3-D Secure) here when it asks for one.
      stripe.confirmCardSetup(d.clientSecret, {
        payment_method: {card: card, billing_details: {name: d.billingName}}
      }).then(function (result) {
        if (result.error) { show(result.error.message || "Check your card details."); ready(); return; }
        return post(d.syncUrl).then(handle);
      }).catch(failed);
    });
  } else {
    var linked = false;
    document.getElementById("bank-link").addEventListener("click", function () {
      if (typeof stripe.collectBankAccountForSetup !== "function") {
        show("Saving a bank account is not available here. Please save a card instead."); return;
      }
      stripe.collectBankAccountForSetup({
        clientSecret: d.clientSecret,
        params: {payment_method_type: "us_bank_account",
                 payment_method_data: {billing_details: {name: d.billingName, email: d.billingEmail}}}
      }).then(function (result) {
        if (result.error) { show(result.error.message); return; }
        if (result.setupIntent && result.setupIntent.status === "requires_confirmation") {
          linked = true;
          var pm = result.setupIntent.payment_method;
          var note = document.getElementById("bank-linked");
          note.textContent = "Bank account linked" + (pm && pm.us_bank_account ?
            ": " + pm.us_bank_account.bank_name + " ending " + pm.us_bank_account.last4 : ".");
          note.hidden = false;
          show("");
        }
      });
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return;
      if (!linked) { show("Link your bank account first."); return; }
      if (!document.getElementById("bank-accept").checked) {
        show("Accept the authorization to save this bank account."); return;
      }
      busy = true; save.disabled = true; show("");
      post(d.bankUrl, {accepted: "1"}).then(handle).catch(failed);
    });
  }
})();
