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
    series.push({ label: s.label, stroke: colour, fill: colour + "22", width: 2, value: (u, v) => usd(v), points: { show: data.x.length < 60 } });
    columns.push(s.values);
  });
  series.push({ label: "calls", stroke: "#94a3b8", dash: [4, 4], width: 1.5, scale: "calls", value: (u, v) => (v == null ? "–" : String(v)) });
  columns.push(data.calls);
  const options = {
    width: holder.clientWidth,
    height: 280,
    series: series,
    axes: [
      {},
      { label: "cost (USD)", values: (u, ticks) => ticks.map(usd), size: 70 },
      { side: 1, scale: "calls", label: "calls", grid: { show: false } },
    ],
    scales: { x: { time: true }, calls: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { live: true },
  };
  const chart = new uPlot(options, columns, holder);
  window.addEventListener("resize", () => chart.setSize({ width: holder.clientWidth, height: 280 }));
}

document.addEventListener("DOMContentLoaded", drawSpendChart);
