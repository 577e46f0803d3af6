// The demo vendor page's own script: token handling and unlocking features on the widget's events.
// This is what docs/widget.md asks a vendor to write (a plain script; the page's CSP allows no inline code).
(function () {
  "use strict";
  var user = document.body.getAttribute("data-user");

  function log(text) {
    var item = document.createElement("li");
    item.textContent = text;
    document.getElementById("event-log").append(item);
  }

  // The vendor's backend mints a fresh session token for the signed-in user.
  function freshToken() {
    return fetch("/api/session?user=" + encodeURIComponent(user), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { log("token refreshed"); return data.token; });
  }

  // Ask the vendor's backend (entitlement check with the vendor key), then swap the panel's content.
  function unlock(feature) {
    return fetch("/api/check?user=" + encodeURIComponent(user) + "&feature=" + encodeURIComponent(feature))
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var panel = document.querySelector('section.panel[data-feature="' + feature + '"]');
        if (!panel || !data.allowed) return;
        var done = document.createElement("p");
        done.className = "unlocked";
        done.textContent = panel.getAttribute("data-title") + " is unlocked.";
        var content = document.createElement("p");
        content.textContent = panel.getAttribute("data-content");
        // The widget stays: it shows its own confirmation (removing it would close its dialog mid-sentence).
        panel.querySelector("h2").after(done, content);
        panel.setAttribute("data-state", "unlocked");
      });
  }

  document.addEventListener("commerce:access-granted", function (e) {
    log("access granted: " + (e.detail.feature || e.detail.module) + " (" + e.detail.source + ")");
    if (e.detail.feature) unlock(e.detail.feature);
  });
  document.addEventListener("commerce:approval-requested", function (e) {
    log("approval requested: " + e.detail.module);
  });
  document.addEventListener("commerce:dismissed", function (e) {
    log("dismissed: " + e.detail.module + " (" + e.detail.where + ")");
  });
  // Elements embedded as tags ask for a new token with this event; set it on the element.
  document.addEventListener("commerce:token-expired", function (e) {
    freshToken().then(function (token) { e.target.token = token; });
  });

  // Some features are mounted from script (one of them in iframe mode), the others as tags.
  document.querySelectorAll(".mount[data-feature]").forEach(function (el) {
    var token = document.querySelector("commerce-suggestions").getAttribute("token");
    window.Commerce.mount(el, {
      token: token,
      feature: el.getAttribute("data-feature"),
      mode: el.getAttribute("data-mode") === "iframe" ? "iframe" : "element",
      pollMs: 500,
      onTokenExpired: freshToken
    });
  });
})();
