// Loaded (blocking) in <head> so the page paints in the chosen theme at once; dark unless the user chose light.
(function () {
  var t = "dark";
  try { t = localStorage.getItem("aurora-theme") || "dark"; } catch (e) { /* storage may be disabled */ }
  document.documentElement.dataset.theme = t === "light" ? "light" : "dark";
})();
