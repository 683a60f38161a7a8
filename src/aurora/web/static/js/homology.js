// The persistence diagram with ECharts: birth/death scatter of H0 and H1 for the latest window (filled) and the
// baseline's most typical window (hollow), with the diagonal; the analyzer's figures and explanation as text.
(function () {
  "use strict";
  var box = document.getElementById("homology");
  if (!box) return;
  var css = function (n) { return getComputedStyle(document.documentElement).getPropertyValue(n).trim(); };
  var $ = function (id) { return document.getElementById(id); };
  var chart = null, last = null;

  function fix(v, d) { return v == null || !isFinite(v) ? "-" : Number(v).toFixed(d); }

  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }

  function summary(v) {
    $("homology-explanation").textContent = v.explanation + (v.status === "scored" ? " (score " + fix(v.score, 3) +
      (v.anomalous ? ", anomalous" : "") + ")" : "");
    var body = $("homology-table").querySelector("tbody");
    body.textContent = "";
    v.now.forEach(function (_, q) {
      var tr = document.createElement("tr");
      cell(tr, "H" + q + (q === 0 ? " (clusters)" : q === 1 ? " (loops)" : ""));
      cell(tr, v.wasserstein ? fix(v.wasserstein[q], 3) : "-");
      cell(tr, v.status === "scored" ? fix(v.distance[q], 3) : "-");
      cell(tr, v.status === "scored" ? fix(v.usual[q][0], 3) + " – " + fix(v.usual[q][2], 3) : "-");
      cell(tr, v.betti[q] + " / " + (v.status === "scored" ? fix(v.betti_baseline[q], 1) : "-"));
      body.appendChild(tr);
    });
    $("homology-meta").textContent = v.columns.length + " gauges (" + v.columns.join(", ") + "), windows of " +
      v.window + " samples at " + fix(v.step_s, 0) + " s, " + v.evaluations + " evaluations replayed; window ending " +
      new Date(v.time * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC" +
      (v.baseline_time ? ", baseline window ending " + new Date(v.baseline_time * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC" : "");
    $("homology-summary").hidden = false;
  }

  function option(v) {
    var colours = [css("--accent"), css("--warn")], series = [], top = 0;
    var add = function (dgms, hollow, name) {
      (dgms || []).forEach(function (pts, q) {
        pts.forEach(function (p) { top = Math.max(top, p[1]); });
        series.push({
          name: "H" + q + " " + name, type: "scatter", data: pts, symbolSize: hollow ? 9 : 7,
          itemStyle: hollow ? { color: "transparent", borderColor: colours[q % 2], borderWidth: 1.5 } : { color: colours[q % 2], opacity: 0.85 },
        });
      });
    };
    add(v.now, false, "latest window");
    add(v.baseline, true, "typical baseline");
    top = top > 0 ? top * 1.08 : 1;
    series.push({ name: "diagonal", type: "line", data: [[0, 0], [top, top]], symbol: "none", silent: true,
                  lineStyle: { color: css("--muted"), type: "dashed", width: 1 } });
    var axis = { type: "value", min: 0, max: top, axisLine: { lineStyle: { color: css("--muted") } },
                 splitLine: { lineStyle: { color: css("--grid") } }, axisLabel: { color: css("--muted"),
                 formatter: function (x) { return Number(x).toFixed(2); } } };
    return {
      animation: false,
      legend: { top: 0, textStyle: { color: css("--fg") }, data: series.filter(function (s) { return s.name !== "diagonal"; }).map(function (s) { return s.name; }) },
      tooltip: { confine: true, formatter: function (p) {
        return p.seriesName + "<br>birth " + fix(p.value[0], 3) + ", death " + fix(p.value[1], 3) + ", persistence " + fix(p.value[1] - p.value[0], 3);
      } },
      grid: { left: 56, right: 20, top: 48, bottom: 48 },
      xAxis: Object.assign({ name: "birth", nameLocation: "middle", nameGap: 28, nameTextStyle: { color: css("--muted") } }, axis),
      yAxis: Object.assign({ name: "death", nameLocation: "middle", nameGap: 40, nameTextStyle: { color: css("--muted") } }, axis),
      series: series,
    };
  }

  function draw(v) {
    var el = $("diagram");
    el.hidden = false;
    if (!window.echarts) return;
    if (!chart) chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(option(v), { notMerge: true });
  }

  fetch(box.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) {
      if (r.status === 401 || r.redirected) { window.location.reload(); throw new Error("session ended"); }
      if (!r.ok) throw new Error("homology.json answered " + r.status);
      return r.json();
    })
    .then(function (v) {
      last = v;
      $("homology-loading").remove();
      if (v.message) { $("homology-message").textContent = v.message; $("homology-message").hidden = false; }
      if (v.ok) { summary(v); draw(v); }
      box.dataset.loaded = v.ok ? "diagram" : "message";
    })
    .catch(function (err) { console.warn(err.message); });

  document.body.addEventListener("aurora-theme", function () { if (last && last.ok) draw(last); });
  window.addEventListener("resize", function () { if (chart) chart.resize(); });
})();
