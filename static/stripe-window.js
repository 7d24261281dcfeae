// Stripe's windows: paying (#stripe-window) and saving a card or bank account (#stripe-setup).
// Card and bank details go from Stripe.js's own fields straight to Stripe; this page sends the portal only
// Stripe's ids, and the portal asks Stripe for the outcome. A card is a PaymentMethod made by the Card Element
// (never a token or source); the portal confirms the payment with it, and when the bank asks for its check
// (3-D Secure) this window runs it at once.
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
    noBank: "Saving a bank account is not available here. Please save a card instead.",
    accept: "Accept the authorization to save this bank account.",
    verify: "It can be used once it is verified; you can close this window."
  } : {
    unloaded: "The payment form could not load. Check your connection and reload this window.",
    unreached: "We could not reach the payment service. Nothing was charged; please try again.",
    refused: "The payment did not go through.",
    noBank: "Bank payments are not available here. Please pay by card.",
    accept: "Accept the authorization to pay by bank account.",
    verify: "Your payment goes ahead once it is verified; you can close this window."
  };
  words.checkCard = "Check your card details.";
  words.microdeposits = "Stripe will email you how to verify this bank account with two small deposits.";
  words.linked = "Bank account linked.";
  words.linkedEnding = "Bank account linked: {bank} ending {last4}";
  words.linkFirst = "Link your bank account first.";
  // The page gives them in its own language (templates/stripe/_words.html); these are the fallback.
  try {
    var given = JSON.parse(d.words || "{}");
    for (var k in given) if (Object.prototype.hasOwnProperty.call(given, k)) words[k] = given[k];
  } catch (e) { /* keep the English words */ }

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
  if (typeof window.Stripe !== "function") { show(words.unloaded); return; }

  var stripe = window.Stripe(d.publishableKey, {locale: d.locale || "auto"});  // its own messages too
  var form = document.getElementById("stripe-form");
  var button = document.getElementById(setup ? "stripe-save" : "stripe-pay");
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

  // The bank's check (3-D Secure), here in this window; then ask the portal where things stand.
  // Stripe.js runs the next action of an intent this server confirmed (use_stripe_sdk).
  function authenticate() {
    var action = typeof stripe.handleNextAction === "function" ?
      stripe.handleNextAction({clientSecret: d.clientSecret}) : stripe.confirmCardPayment(d.clientSecret);
    return action.then(function () {
      return post(d.syncUrl).then(function (a) { return handle(a, true); });
    });
  }

  // The server's answer: done, a 3-D Secure challenge to finish here, or a message and another try.
  function handle(answer, challenged) {
    if (answer.done) { finish(); return; }
    if (answer.status === "requires_action" && d.method !== "card") {
      // Stripe verifies this account with two small deposits before it can be debited.
      show(words.microdeposits + " " + words.verify);
      return;
    }
    if (answer.status === "requires_action" && !challenged) return authenticate();
    show(answer.message || words.refused);
    ready();
  }

  function failed() { show(words.unreached); ready(); }
  function settled(a) { return handle(a, true); }

  if (d.method === "card") {
    var billing = {};
    try { billing = JSON.parse(d.billing || "{}"); } catch (e) { /* Stripe asks for what it needs */ }
    var zip = billing.address && billing.address.postal_code;
    // Card only: no wallets, and no Link; the postal code is asked only when the billing step did not give it.
    var card = stripe.elements().create("card", {hidePostalCode: !!zip, disableLink: true});
    card.mount("#card-element");
    var savedButton = document.getElementById("stripe-pay-saved");
    if (savedButton) savedButton.addEventListener("click", function () {
      // The payment's saved card, confirmed on-session by the portal; the bank's check then runs here.
      if (busy) return;
      start();
      savedButton.disabled = true;
      post(d.savedUrl).then(function (a) {
        savedButton.disabled = false;
        return handle(a, false);
      }).catch(function () { savedButton.disabled = false; failed(); });
    });
    if (!setup && root.hasAttribute("data-next-action")) {
      // A saved card whose bank asked for its check when the portal charged it: run the check now.
      start();
      authenticate().catch(failed);
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return; // one click at a time; the server also never confirms a paid intent again
      start();
      var sent = setup ?
        // Stripe.js confirms the SetupIntent, with the bank's check (3-D Secure) here when it asks for one.
        stripe.confirmCardSetup(d.clientSecret, {payment_method: {card: card, billing_details: billing}})
          .then(function (result) {
            if (result.error) { show(result.error.message || words.checkCard); ready(); return; }
            return post(d.syncUrl).then(settled);
          }) :
        // A PaymentMethod from the card's fields; the portal confirms the payment with it (and decides on saving).
        stripe.createPaymentMethod({type: "card", card: card, billing_details: billing}).then(function (result) {
          if (result.error) { show(result.error.message || words.checkCard); ready(); return; }
          return post(d.cardUrl, {payment_method: result.paymentMethod.id})
            .then(function (a) { return handle(a, false); });
        });
      sent.catch(failed);
    });
  } else {
    var linked = false;
    var collect = setup ? stripe.collectBankAccountForSetup : stripe.collectBankAccountForPayment;
    document.getElementById("bank-link").addEventListener("click", function () {
      if (typeof collect !== "function") { show(words.noBank); return; }
      collect.call(stripe, {
        clientSecret: d.clientSecret,
        params: {payment_method_type: "us_bank_account",
                 payment_method_data: {billing_details: {name: d.billingName, email: d.billingEmail}}}
      }).then(function (result) {
        if (result.error) { show(result.error.message); return; }
        var intent = result.setupIntent || result.paymentIntent;
        if (intent && intent.status === "requires_confirmation") {
          linked = true;
          var pm = intent.payment_method;
          var note = document.getElementById("bank-linked");
          note.textContent = pm && pm.us_bank_account ? words.linkedEnding
            .replace("{bank}", pm.us_bank_account.bank_name).replace("{last4}", pm.us_bank_account.last4) : words.linked;
          note.hidden = false;
          show("");
        }
      });
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) return;
      if (!linked) { show(words.linkFirst); return; }
      if (!document.getElementById("bank-accept").checked) { show(words.accept); return; }
      start();
      post(d.bankUrl, {accepted: "1"}).then(settled).catch(failed);
    });
  }
})();
