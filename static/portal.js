// The portal's only script: the payment window (pop-up) with its blocked-pop-up fallback,
// and the current-tab marker. Everything works without it; it only makes the flow smoother.
(function () {
  "use strict";
  var win = null;
  var opening = false; // Make Payment was clicked: a window is waiting for its address

  function open(url) {
    win = window.open(url, "portal-payment", "popup,width=480,height=720");
    return win;
  }

  function box() { return document.getElementById("pay-window"); }

  // One polite live region, made at start so that screen readers already watch it when its text changes.
  var live = document.createElement("p");
  live.className = "sr"; live.setAttribute("aria-live", "polite"); live.id = "announce";
  document.body.appendChild(live);
  function announce(text) {
    live.textContent = "";
    setTimeout(function () { live.textContent = text.replace(/\s+/g, " ").trim(); }, 50); // same text twice still speaks
  }

  // Move focus to an element that is not focusable by itself (a heading, the error summary).
  function focusOn(el) {
    if (!el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
    el.focus();
  }

  // The inline form's first field, once the frame has loaded (same origin; a processor's own frame inside it
  // cannot be reached, so the frame itself takes focus then).
  function focusFrame(frame) {
    var doc = null;
    try { doc = frame.contentDocument; } catch (err) { doc = null; }
    var field = doc && doc.querySelector(".error-summary, input:not([type=hidden]), select, textarea");
    if (field) field.focus(); else frame.focus();
  }

  function showInline() {
    var b = box();
    if (!b) return;
    var frame = document.getElementById("pay-inline");
    var notice = document.getElementById("pay-blocked");
    notice.hidden = false;
    announce(notice.textContent);
    if (frame.hasAttribute("data-in-page")) { mount(frame, b.getAttribute("data-inline-url")); return; }
    if (!frame.getAttribute("src")) {
      frame.addEventListener("load", function () { focusFrame(frame); }, { once: true });
      frame.addEventListener("load", fit);
      frame.setAttribute("src", b.getAttribute("data-inline-url"));
      frame.hidden = false;
    } else {
      frame.hidden = false;
      focusFrame(frame);
    }
  }

  // A processor whose window must not sit in a frame of ours (Stripe's fields): its form is fetched and mounted
  // in this page, then the scripts its root names (data-load) run in order, each after the one before.
  function mount(box, url) {
    box.hidden = false;
    if (box.hasAttribute("data-mounted")) { focusOn(box.querySelector("h3") || box); return; }
    box.setAttribute("data-mounted", "");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        box.innerHTML = html; // the portal's own fragment (same origin); its scripts are loaded below, by name
        var root = box.firstElementChild;
        var scripts = [];
        try { scripts = JSON.parse((root && root.getAttribute("data-load")) || "[]"); } catch (err) { scripts = []; }
        (function next(i) {
          if (i >= scripts.length) return;
          var tag = document.createElement("script");
          tag.src = scripts[i];
          tag.onload = function () { next(i + 1); };
          document.head.appendChild(tag);
        })(0);
        focusOn(box.querySelector("h3") || box);
      })
      .catch(function () { box.removeAttribute("data-mounted"); window.location.assign(url.replace("mode=inline", "mode=page")); });
  }

  // The inline form is the portal's own page (same origin): size the frame to it, so no empty area is
  // left below a short form and a long one (an error, the bank's check) needs no inner scroll bar.
  function fit() {
    var frame = document.getElementById("pay-inline");
    try {
      var doc = frame.contentDocument;
      if (doc && doc.body) frame.style.height = Math.ceil(doc.body.getBoundingClientRect().height) + 2 + "px";
    } catch (err) { /* another origin's page: keep the stylesheet's height */ }
  }

  function recheck() {
    var poll = document.getElementById("pay-poll");
    if (!poll || !window.htmx) return false;
    window.htmx.trigger(poll, "check");
    return true;
  }

  // A blocker may hand back a window and close it at once. A quick customer's window also closes soon,
  // having paid, so ask the server first: the inline form shows only if the payment still waits.
  var early = 0; // 1: the window closed at once; 2: and the server is being asked about it
  function watch() {
    var started = Date.now();
    var timer = setInterval(function () {
      if (!win || win.closed) {
        clearInterval(timer);
        early = Date.now() - started < 1500 ? 1 : 0;
        if (!recheck() && early) { early = 0; showInline(); }
      }
    }, 250);
  }

  function answered() {
    if (early === 2) { early = 0; showInline(); } // does nothing once the payment has moved on
  }

  function launch(url) {
    if (win && !win.closed) { win.location.href = url; win.focus(); }
    else open(url);
    if (!win) showInline(); else watch();
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("[data-pay-open],[data-pay-window]") : null;
    if (!t) return;
    if (t.hasAttribute("data-pay-open")) {
      var b = box();
      if (!b) return;
      e.preventDefault();
      launch(b.getAttribute("data-popup-url"));
    } else {
      // Open the window now, inside the click, so pop-up blockers allow it; its address arrives with the next step.
      opening = true;
      open("");
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    var b = box();
    if (opening) {
      opening = false;
      if (b) launch(b.getAttribute("data-popup-url"));
      else if (win && !win.closed) win.close(); // the form had errors, or a saved method was charged
    }
    if (document.querySelector("[data-pay-final]") && win && !win.closed) win.close();
    answered();
  });
  // Only an answer to a request sent after the window closed counts, not one already on its way.
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (early === 1 && e.target.id === "pay-poll") early = 2;
  });
  // Make Payment never reached the server (or it failed): close the blank window opened for it.
  function failed() {
    if (opening) { opening = false; if (win && !win.closed) win.close(); }
    answered();
  }
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:responseError", failed);

  // Say so when a step cannot reach the portal (a dropped link) instead of leaving the page as it was.
  // The payment poll is left out: it simply tries again.
  function notice(e, text) {
    if (e.target.id === "pay-poll") return;
    var box = document.getElementById("net-error");
    var main = document.getElementById("main");
    if (!box && main) {
      box = document.createElement("p");
      box.id = "net-error"; box.className = "error"; box.setAttribute("role", "alert");
      main.parentNode.insertBefore(box, main);
    }
    if (box) { box.textContent = text; box.hidden = false; }
  }
  document.addEventListener("htmx:sendError", function (e) {
    notice(e, "We could not reach the portal. Check your connection, then try again.");
  });
  document.addEventListener("htmx:responseError", function (e) {
    notice(e, "Something went wrong on our side. Please try again in a minute.");
  });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var box = document.getElementById("net-error");
    if (box && e.target.id !== "pay-poll") box.hidden = true;
  });

  // The saved methods offered follow the payment type (the stylesheet hides the others): a saved card
  // must not stay chosen, unseen, once ACH is picked. The default of the new type is chosen, else "new".
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.name !== "method_type" || !t.form) return;
    var chosen = t.form.querySelector("input[name=saved_method]:checked");
    var label = chosen && chosen.closest("[data-type]");
    if (!label || label.getAttribute("data-type") === t.value) return;
    var next = t.form.querySelector("[data-type=" + t.value + "][data-default] input") ||
      t.form.querySelector("input[name=saved_method][value=new]");
    if (next) next.checked = true;
  });

  // After a step or a tab swaps in, focus goes to its heading (or to its error summary) and it is announced,
  // so that keyboard and screen-reader users start on the new step instead of at the top of the page.
  // The payment poll only announces what it says; swaps made out of band are left alone.
  var swapped = null, pollSaid = "";
  document.addEventListener("htmx:beforeSwap", function (e) {
    var t = e.detail.target;
    swapped = t && t.id && e.detail.shouldSwap !== false ? t.id : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    var id = swapped;
    swapped = null;
    var el = id && document.getElementById(id);
    if (!el) return;
    if (id === "pay-poll") { // polled every few seconds: speak only when what it says changes
      var said = el.textContent.trim();
      if (said !== pollSaid) { pollSaid = said; announce(said); }
      return;
    }
    var blocked = el.querySelector("#pay-blocked");
    if (blocked && !blocked.hidden) return; // showInline() announced it and focuses the inline form
    var summary = el.querySelector(".error-summary");
    var heading = el.matches("h1, h2") ? el : el.querySelector("h1, h2");
    var target = summary || heading;
    if (!target) return;
    focusOn(target);
    var note = summary ? null : el.querySelector("p[role=status], p[role=alert]");
    if (note && note.closest("[hidden]")) note = null;
    if (note) pollSaid = note.id === "pay-poll" ? note.textContent.trim() : pollSaid;
    announce(target.textContent + (note ? ". " + note.textContent : ""));
  });

  // Keep the tab marker right when tabs load as fragments.
  document.addEventListener("htmx:pushedIntoHistory", function () {
    var back = document.querySelector("form.lang input[name=next]"); // the language chooser returns here
    if (back) back.value = location.pathname + location.search;
    var links = document.querySelectorAll("nav.tabs a");
    var path = location.pathname;
    var paying = /^\/pay(ments)?(\/|$)|\/pay$/.test(path); // the pay flow, Pay Now included, is under Payments
    for (var i = 0; i < links.length; i++) {
      var href = links[i].getAttribute("href");
      var here = paying ? href === "/payments" : href === "/" ? path === "/" : path.indexOf(href) === 0;
      if (here) links[i].setAttribute("aria-current", "page"); else links[i].removeAttribute("aria-current");
    }
  });
})();
