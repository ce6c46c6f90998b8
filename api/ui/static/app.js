// The dashboard's own script: copy buttons, confirmations, and the spend chart.
// Loaded from /ui/static (the pages' CSP allows no inline script).
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy).textContent.trim();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => selectText(button.dataset.copy));
  } else {
    selectText(button.dataset.copy);
    document.execCommand("copy");
    done();
  }
});

function selectText(id) {
  const range = document.createRange();
  range.selectNodeContents(document.getElementById(id));
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#64748b"];

// Calls are whole numbers: no 0.5 ticks.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000];

function utcLabel(seconds, bucket) {
  const iso = new Date(seconds * 1000).toISOString();  // always UTC
  return bucket === "day" ? iso.slice(0, 10) : iso.slice(5, 10) + " " + iso.slice(11, 16);
}

function usd(value) {
  if (value == null) return "–";
  return "$" + value.toFixed(value < 0.01 && value > 0 ? 6 : 2);
}

function drawSpendChart() {
  const holder = document.getElementById("spend-chart");
  const source = document.getElementById("spend-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  const data = JSON.parse(source.textContent);
  const series = [{}];
  const columns = [data.x];
  data.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    series.push({ label: s.label, stroke: colour, fill: colour + "18", width: 2, value: (u, v) => usd(v), points: { show: data.x.length <= 48 } });
    columns.push(s.values);
  });
  series.push({ label: "calls", stroke: "#94a3b8", dash: [4, 4], width: 1.5, scale: "calls", value: (u, v) => (v == null ? "–" : String(v)) });
  columns.push(data.calls);
  const options = {
    width: holder.clientWidth,
    height: 280,
    series: series,
    axes: [
      { values: (u, ticks) => ticks.map((t) => utcLabel(t, data.bucket)) },
      { values: (u, ticks) => ticks.map(usd), size: 90 },
      { side: 1, scale: "calls", label: "calls", grid: { show: false }, incrs: WHOLE },
    ],
    scales: { x: { time: true }, calls: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { live: true },
    // Buckets are UTC hours and days: show them in UTC, not in the browser's zone.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
  };
  const chart = new uPlot(options, columns, holder);
  window.addEventListener("resize", () => chart.setSize({ width: holder.clientWidth, height: 280 }));
}

document.addEventListener("DOMContentLoaded", drawSpendChart);
