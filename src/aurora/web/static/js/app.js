// Theme toggle, and the live stream: server-sent events become DOM events that htmx fragments and charts
// listen for (aurora-refresh, aurora-incident, aurora-anomaly, aurora-change-event, aurora-alert, aurora-action,
// aurora-data).
(function () {
  "use strict";
  var root = document.documentElement;
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.setAttribute("aria-pressed", String(root.dataset.theme === "light"));
    toggle.addEventListener("click", function () {
      var next = root.dataset.theme === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      toggle.setAttribute("aria-pressed", String(next === "light"));
      try { localStorage.setItem("aurora-theme", next); } catch (e) { /* not persisted */ }
      document.body.dispatchEvent(new CustomEvent("aurora-theme", { bubbles: true, detail: next }));
    });
  }

  var src = document.body.dataset.live;
  if (!src || !window.EventSource) return;
  var badge = document.getElementById("live");
  var fire = function (name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { bubbles: true, detail: detail }));
  };
  var parse = function (e) { try { return JSON.parse(e.data); } catch (err) { return {}; } };
  var es = new EventSource(src);
  window.auroraStream = es;
  es.onopen = function () { badge.hidden = false; badge.textContent = "live"; badge.className = "live on"; };
  es.onerror = function () {
    badge.hidden = false;
    badge.className = "live off";
    // CLOSED: the server refused the stream (e.g. the session ended); the browser will not retry by itself.
    badge.textContent = es.readyState === EventSource.CLOSED ? "offline: reload the page" : "reconnecting…";
  };
  ["incident", "anomaly", "change_event", "alert", "action"].forEach(function (kind) {
    es.addEventListener(kind, function (e) {
      var d = parse(e);
      fire("aurora-" + kind.replace("_", "-"), d);
      fire("aurora-refresh", d);
    });
  });
  es.addEventListener("data", function (e) {
    var d = parse(e);
    window.auroraDataTime = d.data_time;
    fire("aurora-data", d);
  });
  window.addEventListener("pagehide", function () { es.close(); });
})();
