// The service graph with ECharts: nodes coloured by health, ringed by risk, arrows caller -> callee;
// click (or Enter on the table below) opens the service. Refreshed when the live stream reports changes.
(function () {
  "use strict";
  var box = document.getElementById("topology");
  if (!box || !window.echarts) return;
  var css = function (n) { return getComputedStyle(document.documentElement).getPropertyValue(n).trim(); };
  var colour = function (h) { return css({ ok: "--ok", degraded: "--warn", critical: "--crit" }[h] || "--unknown"); };
  var chart = echarts.init(box, null, { renderer: "canvas" });

  function option(view) {
    var nodes = view.nodes.map(function (n) {
      var risky = n.risk != null && n.risk >= 70;
      var node = {
        id: n.service, name: n.service, value: n.risk,
        symbolSize: n.user_facing ? 46 : 36,
        itemStyle: { color: colour(n.health), borderColor: risky ? css("--crit") : css("--bg"), borderWidth: risky ? 4 : 1.5 },
        label: { show: true, position: "bottom", color: css("--fg") },
        tooltip: { formatter: function () {
          return "<b>" + n.service + "</b> · " + n.health + (n.risk != null ? " · risk " + Math.round(n.risk) : "") +
            "<br>" + (n.reasons || []).map(function (r) { return r.replace(/</g, "&lt;"); }).join("<br>");
        } },
      };
      return node;
    });
    var links = view.edges.map(function (e) {
      var bad = e.error_ratio != null && e.error_ratio >= 0.01;
      return { source: e.from, target: e.to, lineStyle: { color: bad ? css("--crit") : css("--muted"), width: bad ? 2.5 : 1.2, opacity: 0.8 },
               tooltip: { formatter: e.from + " → " + e.to + (e.rate_per_s != null ? "<br>" + e.rate_per_s.toFixed(1) + " calls/s, " +
                 (100 * (e.error_ratio || 0)).toFixed(2) + "% errors" : "") } };
    });
    return {
      animation: false,
      tooltip: { confine: true },
      series: [{
        type: "graph", layout: "force", roam: true, draggable: true, data: nodes, links: links,
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 9,
        force: { repulsion: 420, edgeLength: 120, gravity: 0.08, layoutAnimation: false },
        emphasis: { focus: "adjacency" },
      }],
    };
  }

  function load() {
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("topology.json answered " + r.status); return r.json(); })
      .then(function (view) {
        chart.setOption(option(view), { notMerge: true });
        box.dataset.loaded = String(view.nodes.length);
      })
      .catch(function (err) { console.warn(err.message); });
  }

  chart.on("click", function (p) { if (p.dataType === "node") window.location.href = "/ui/services/" + encodeURIComponent(p.data.id); });
  load();
  var last = 0;
  document.body.addEventListener("aurora-refresh", function () { if (Date.now() - last > 2000) { last = Date.now(); load(); } });
  document.body.addEventListener("aurora-theme", load);
  window.addEventListener("resize", function () { chart.resize(); });
})();
