// Warn before the idle timeout signs the customer out, and let them stay signed in (issue 11).
// The server enforces the timeout; this only tells the person in time. No inline script: CSP-safe.
(function () {
  var box = document.getElementById("session-warning");
  if (!box) return;
  var form = box.querySelector("form"), button = box.querySelector("button");
  var warnTimer, endTimer;
  function schedule(seconds) {
    clearTimeout(warnTimer); clearTimeout(endTimer);
    var warnBefore = Math.min(120, seconds / 2);
    warnTimer = setTimeout(function () {
      box.hidden = false;
      button.focus();
    }, (seconds - warnBefore) * 1000);
    endTimer = setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) { box.hidden = true; schedule(data.seconds); })
      .catch(function () { window.location.reload(); });
  });
  schedule(parseFloat(box.getAttribute("data-expires")));
})();
