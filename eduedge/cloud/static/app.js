// The city page's script: charts from the options embedded in the page, sortable and searchable tables.
"use strict";
(function () {
  const charts = [];
  document.querySelectorAll("script[data-chart]").forEach(function (s) {
    const el = document.getElementById(s.dataset.chart);
    if (!el || !window.echarts) return;
    const chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(JSON.parse(s.textContent));
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  // The layout's widths, for a check that nothing overflows sideways (tests/chromium_helpers.py reads them).
  function widths() {
    const root = document.documentElement;
    root.setAttribute("data-scroll-width", String(root.scrollWidth));
    root.setAttribute("data-client-width", String(root.clientWidth));
  }
  widths();
  window.addEventListener("resize", widths);

  function cellKey(td, numeric) {
    const v = td.dataset.sort;
    if (numeric || (v !== "" && !isNaN(Number(v)))) { const n = Number(v); return isNaN(n) ? -Infinity : n; }
    return (v || td.textContent).trim();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, i) {
      th.classList.add("sorter");
      th.addEventListener("click", function () {
        const asc = th.dataset.dir !== "asc";
        table.querySelectorAll("th").forEach(function (x) { delete x.dataset.dir; });
        th.dataset.dir = asc ? "asc" : "desc";
        const numeric = th.dataset.numeric === "1";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = cellKey(a.cells[i], numeric), y = cellKey(b.cells[i], numeric);
          const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), "zh");
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll("section.table input.search").forEach(function (input) {
    const section = input.closest("section.table");
    const count = section.querySelector(".count");
    input.addEventListener("input", function () {
      const q = input.value.trim().toLowerCase();
      let shown = 0;
      section.querySelectorAll("tbody tr").forEach(function (tr) {
        const hit = !q || tr.textContent.toLowerCase().indexOf(q) >= 0;
        tr.hidden = !hit;
        if (hit) shown++;
      });
      if (count) count.textContent = String(shown);
    });
  });
})();
