// Service charts with uPlot: one chart per metric, the usual band, anomaly marks, change markers and
// prediction cones. Data comes from the page's charts.json; a live "data" event re-fetches it (at most
// once a second) and updates the charts in place.
(function () {
  "use strict";
  var PALETTE = ["#4cc9f0", "#f7b801", "#b388ff", "#6ee7b7", "#ff8fab", "#ffd166", "#90caf9", "#c5e1a5"];

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function fmt(unit) {
    return function (v) {
      if (v == null || !isFinite(v)) return "-";
      if (unit === "ratio") return (v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 0) + "%";
      if (unit === "s") return Math.abs(v) < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s";
      if (unit === "bytes") {
        var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
        while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
        return v.toFixed(v < 10 ? 1 : 0) + " " + u[i];
      }
      if (unit === "/s") return (Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(0)) + "/s";
      return Math.abs(v) >= 1000 ? v.toFixed(0) : String(+v.toPrecision(3));
    };
  }

  // Marks drawn over the plot: changes (dashed verticals), anomalies (dot + expected range), predictions (cone).
  function marksPlugin(spec) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height, px = window.devicePixelRatio || 1;
          ctx.save();
          ctx.beginPath(); ctx.rect(u.bbox.left, top, u.bbox.width, h); ctx.clip();  // cones may run past the axis
          ctx.setLineDash([4 * px, 4 * px]);
          ctx.strokeStyle = css("--change");
          ctx.fillStyle = css("--change");
          ctx.lineWidth = px;
          ctx.font = (10 * px) + "px sans-serif";
          (spec.events || []).forEach(function (e) {
            var x = u.valToPos(e.time, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
            ctx.fillText(e.text, x + 3 * px, top + 10 * px);
          });
          ctx.setLineDash([]);
          (spec.anomalies || []).forEach(function (a) {
            var x = u.valToPos(a.time, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            var lo = u.valToPos(a.expected[0], "y", true), hi = u.valToPos(a.expected[1], "y", true);
            ctx.strokeStyle = css("--muted");
            ctx.beginPath(); ctx.moveTo(x, lo); ctx.lineTo(x, hi); ctx.stroke();
            ctx.fillStyle = a.severity === "critical" ? css("--crit") : css("--warn");
            ctx.beginPath(); ctx.arc(x, u.valToPos(a.observed, "y", true), 3.5 * px, 0, 2 * Math.PI); ctx.fill();
          });
          (spec.predictions || []).forEach(function (p) {
            if (p.cone && p.cone.length > 1) { drawCone(u, ctx, p, px); return; }
            if (p.threshold == null || p.eta == null) return;
            var last = lastValue(spec);
            if (last == null) return;
            var x0 = u.valToPos(spec.x[spec.x.length - 1], "x", true), y0 = u.valToPos(last, "y", true);
            var yT = u.valToPos(p.threshold, "y", true);
            var xl = u.valToPos(p.eta_low != null ? p.eta_low : p.eta, "x", true);
            var xh = u.valToPos(p.eta_high != null ? p.eta_high : p.eta, "x", true);
            ctx.fillStyle = css("--cone");
            ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(xl, yT); ctx.lineTo(xh, yT); ctx.closePath(); ctx.fill();
            ctx.strokeStyle = css("--crit");
            ctx.setLineDash([6 * px, 3 * px]);
            ctx.beginPath(); ctx.moveTo(u.bbox.left, yT); ctx.lineTo(u.bbox.left + u.bbox.width, yT); ctx.stroke();
            ctx.setLineDash([]);
          });
          ctx.restore();
        }],
      },
    };
  }

  // The forecaster's own cone ([t, low, mid, high] rows): the band it expects, its middle, and the limit.
  function drawCone(u, ctx, p, px) {
    var c = p.cone, i;
    ctx.fillStyle = css("--cone");
    ctx.beginPath();
    ctx.moveTo(u.valToPos(c[0][0], "x", true), u.valToPos(c[0][3], "y", true));
    for (i = 1; i < c.length; i++) ctx.lineTo(u.valToPos(c[i][0], "x", true), u.valToPos(c[i][3], "y", true));
    for (i = c.length - 1; i >= 0; i--) ctx.lineTo(u.valToPos(c[i][0], "x", true), u.valToPos(c[i][1], "y", true));
    ctx.closePath(); ctx.fill();
    ctx.strokeStyle = css("--crit");
    ctx.lineWidth = px;
    ctx.setLineDash([2 * px, 3 * px]);
    ctx.beginPath();
    for (i = 0; i < c.length; i++) {
      var x = u.valToPos(c[i][0], "x", true), y = u.valToPos(c[i][2], "y", true);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    }
    ctx.stroke();
    if (p.threshold != null) {
      var yT = u.valToPos(p.threshold, "y", true);
      ctx.setLineDash([6 * px, 3 * px]);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, yT); ctx.lineTo(u.bbox.left + u.bbox.width, yT); ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  function lastValue(spec) {
    var vals = spec.series[0] ? spec.series[0].values : [];
    for (var i = vals.length - 1; i >= 0; i--) if (vals[i] != null) return vals[i];
    return null;
  }

  function toData(spec) {
    var data = [spec.x];
    spec.series.forEach(function (s) { data.push(s.values); });
    if (spec.limit) data.push(spec.limit.values);
    if (spec.band) { data.push(spec.band.hi); data.push(spec.band.lo); }
    return data;
  }

  function xRange(spec) {
    var lo = spec.x[0], hi = spec.x[spec.x.length - 1], span = hi - lo;
    (spec.predictions || []).forEach(function (p) {
      var end = p.cone && p.cone.length ? p.cone[p.cone.length - 1][0] : (p.eta_high != null ? p.eta_high : p.eta);
      if (end != null) hi = Math.max(hi, Math.min(end, spec.x[spec.x.length - 1] + span));
    });
    return [lo, hi];
  }

  function options(spec, width) {
    var f = fmt(spec.unit), grid = { stroke: css("--grid"), width: 1 }, axis = css("--muted");
    var series = [{}];
    spec.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, value: function (u, v) { return f(v); },
                    points: { show: false } });
    });
    if (spec.limit) {
      series.push({ label: spec.limit.label, stroke: css("--crit"), width: 1.2, dash: [6, 4], points: { show: false },
                    value: function (u, v) { return f(v); } });
    }
    var bands;
    if (spec.band) {
      series.push({ label: "usual high", stroke: "transparent", points: { show: false }, value: function (u, v) { return f(v); } });
      series.push({ label: "usual low", stroke: "transparent", points: { show: false }, value: function (u, v) { return f(v); } });
      bands = [{ series: [series.length - 2, series.length - 1], fill: css("--band") }];
    }
    var thresholds = (spec.predictions || []).map(function (p) { return p.threshold; }).filter(function (v) { return v != null; });
    return {
      width: width, height: 200, series: series, bands: bands,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },  // the pages speak UTC
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: {
        x: { time: true, range: function () { return xRange(spec); } },
        y: { range: function (u, min, max) {
          thresholds.forEach(function (t) { min = Math.min(min, t); max = Math.max(max, t); });
          if (min === max) { min -= 1; max += 1; }
          var pad = (max - min) * 0.08;
          return [min - pad, max + pad];
        } },
      },
      axes: [
        { stroke: axis, grid: grid, ticks: grid },
        { stroke: axis, grid: grid, ticks: grid, size: 64, values: function (u, vals) { return vals.map(f); } },
      ],
      plugins: [marksPlugin(spec)],
    };
  }

  function describe(spec) {
    var n = (spec.anomalies || []).length, text = n ? n + " anomal" + (n === 1 ? "y" : "ies") : "no anomalies";
    var changes = (spec.events || []).length;
    return text + (changes ? ", " + changes + " change" + (changes === 1 ? "" : "s") : "") +
      ((spec.predictions || []).length ? ", predicted breach" : "");
  }

  var charts = {};

  function build(box, spec) {
    var fig = document.createElement("figure");
    fig.className = "chart";
    var cap = document.createElement("figcaption");
    cap.innerHTML = "";
    var title = document.createElement("strong");
    title.textContent = spec.metric;
    var note = document.createElement("span");
    note.className = "muted";
    note.textContent = " " + (spec.unit === "/s" ? "(per-second rate) " : "") + "· " + describe(spec);
    cap.appendChild(title); cap.appendChild(note);
    fig.appendChild(cap);
    var plot = document.createElement("div");
    fig.appendChild(plot);
    if ((spec.anomalies || []).length) {
      var list = document.createElement("ul");
      list.className = "marks";
      spec.anomalies.slice(0, 3).forEach(function (a) {
        var li = document.createElement("li");
        li.textContent = new Date(a.time * 1000).toISOString().slice(11, 19) + " UTC " + a.severity + ": " + a.explanation;
        list.appendChild(li);
      });
      fig.appendChild(list);
    }
    box.appendChild(fig);
    var width = Math.max(240, plot.clientWidth || box.clientWidth);
    var u = new uPlot(options(spec, width), toData(spec), plot);
    return { fig: fig, plot: plot, u: u, spec: spec, note: note };
  }

  function draw(box, payload) {
    var seen = {};
    payload.charts.forEach(function (spec) {
      spec.events = payload.events;
      seen[spec.metric] = true;
      var c = charts[spec.metric];
      if (c && c.spec.series.length === spec.series.length && !!c.spec.band === !!spec.band &&
          !!c.spec.limit === !!spec.limit) {
        c.spec.x = spec.x; c.spec.series = spec.series; c.spec.band = spec.band; c.spec.anomalies = spec.anomalies;
        c.spec.limit = spec.limit;
        c.spec.events = spec.events; c.spec.predictions = spec.predictions;
        c.note.textContent = " " + (spec.unit === "/s" ? "(per-second rate) " : "") + "· " + describe(spec);
        c.u.setData(toData(c.spec));
      } else {
        if (c) { c.u.destroy(); c.fig.remove(); }
        charts[spec.metric] = build(box, spec);
      }
    });
    Object.keys(charts).forEach(function (m) {
      if (!seen[m]) { charts[m].u.destroy(); charts[m].fig.remove(); delete charts[m]; }
    });
  }

  function rebuildAll(box) {
    Object.keys(charts).forEach(function (m) { charts[m].u.destroy(); charts[m].fig.remove(); delete charts[m]; });
  }

  window.AuroraCharts = { build: build, draw: draw, options: options };

  var box = document.getElementById("charts");
  if (!box || !window.uPlot) return;
  var src = box.dataset.src, busy = false, again = false, last = null, lastFetch = 0;

  function load() {
    if (busy) { again = true; return; }
    busy = true; lastFetch = Date.now();
    fetch(src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401 || r.redirected) { window.location.reload(); throw new Error("session ended"); }
        if (!r.ok) throw new Error("charts.json answered " + r.status);
        return r.json();
      })
      .then(function (payload) {
        last = payload;
        var loading = document.getElementById("charts-loading");
        if (loading) loading.remove();
        if (!payload.charts.length && !box.querySelector(".empty")) {
          var p = document.createElement("p");
          p.className = "empty";
          p.textContent = "No metrics in this time range for this service.";
          box.appendChild(p);
        }
        draw(box, payload);
        box.dataset.loaded = String(Date.now());
        document.body.dispatchEvent(new CustomEvent("aurora-charts-drawn", { bubbles: true }));
      })
      .catch(function (err) { console.warn(err.message); })
      .then(function () { busy = false; if (again) { again = false; load(); } });
  }

  load();
  document.body.addEventListener("aurora-data", function () {
    if (Date.now() - lastFetch >= 1000) load();
    else if (!again) { again = true; setTimeout(function () { if (!busy) { again = false; load(); } }, 1000); }
  });
  document.body.addEventListener("aurora-theme", function () { rebuildAll(box); if (last) draw(box, last); });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      Object.keys(charts).forEach(function (m) { var c = charts[m]; c.u.setSize({ width: Math.max(240, c.plot.clientWidth), height: 200 }); });
    }, 150);
  });
})();
