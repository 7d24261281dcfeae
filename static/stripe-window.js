// Stripe's payment window. Card and bank details go from Stripe.js's own fields straight to Stripe;
// this page sends the portal only Stripe's ids, and the portal asks Stripe for the outcome.
(function () {
  "use strict";
  var root = document.getElementById("stripe-window");
  if (!root) return;
  var d = root.dataset;

  function finish() {
    var form = document.getElementById("stripe-form");
    if (form) form.hidden = true;
    document.getElementById("stripe-done").hidden = false;
    if (d.mode === "popup" && window.opener) window.close();
    else if (d.mode === "page") window.location.assign(d.backUrl);
  }

  if (root.hasAttribute("data-finished")) { finish(); return; }
  if (typeof window.Stripe !== "function") {
    show("The payment form could not load. Check your connection and reload this window.");
    return;
  }

  var stripe = window.Stripe(d.publishableKey);
  var form = document.getElementById("stripe-form");
  var pay = document.getElementById("stripe-pay");
  var busy = false;

  function show(text) {
    var m = document.getElementById("stripe-message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function ready() { busy = false; pay.disabled = false; }

  function post(url, data) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": d.csrf, "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams(data || {}).toString()
    }).then(function (r) { return r.json(); });
  }

  // The server's answer: done, a 3-D Secure challenge to finish here, or a message and another try.
  function handle(answer, challenged) {
    if (answer.done) { finish(); return; }
    if (answer.status === "requires_action" && d.method !== "card") {
      // Stripe verifies this account with two small deposits; the payment continues once it is verified.
      show("Stripe will email you how to verify this bank account with two small deposits. " +
           "Your payment goes ahead once it is verified; you can close this window.");
      return;
    }
    if (answer.status === "requires_action" && !challenged) {
      // The card issuer's check (3-D Secure), here in this window; then ask the portal where things stand.
      var action = typeof stripe.handleNextAction === "function" ?
        stripe.handleNextAction({clientSecret: d.clientSecret}) : stripe.confirmCardPayment(d.clientSecret);
      return action.then(function () {
        return post(d.syncUrl).then(function (a) { return handle(a, true); });
      });
    }
    show(answer.message || "The payment did not go through.");
    ready();
  }

  function failed() {
    show("We could not reach the payment service. Nothing was charged; please try again.");
    ready();
  }

  if (d.method === "card") {
    var card = stripe.elements().create("card");
    card.mount("#card-element");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return; // one Pay at a time; the server also never confirms a paid intent again
      busy = true; pay.disabled = true; show("");
      stripe.createToken(card, {name: d.billingName}).then(function (result) {
        if (result.error) { show(result.error.message || "Check your card details."); ready(); return; }
        return post(d.cardUrl, {token: result.token.id}).then(function (a) { return handle(a, false); });
      }).catch(failed);
    });
  } else {
    var linked = false;
    var link = document.getElementById("bank-link");
    link.addEventListener("click", function () {
      if (typeof stripe.collectBankAccountForPayment !== "function") {
        show("Bank payments are not available here. Please pay by card."); return;
      }
      stripe.collectBankAccountForPayment({
        clientSecret: d.clientSecret,
        params: {payment_method_type: "us_bank_account",
                 payment_method_data: {billing_details: {name: d.billingName, email: d.billingEmail}}}
      }).then(function (result) {
        if (result.error) { show(result.error.message); return; }
        if (result.paymentIntent && result.paymentIntent.status === "requires_confirmation") {
          linked = true;
          var pm = result.paymentIntent.payment_method;
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
        show("Accept the authorization to pay by bank account."); return;
      }
      busy = true; pay.disabled = true; show("");
      post(d.bankUrl, {accepted: "1"}).then(function (a) { return handle(a, true); }).catch(failed);
    });
  }
})();
