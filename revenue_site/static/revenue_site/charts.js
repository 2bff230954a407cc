/* Draws every <canvas data-chart="ID"> from the JSON in the element #ID (Django's json_script).
   Loaded after the vendored Chart.js by revenue_site/includes/chartjs.html. The JSON is data
   only: {type, labels, datasets: [{label, data}], y_title}. Values may be strings (exact
   decimals from Django); they are drawn as numbers, null leaves a gap. */
(function () {
  "use strict";

  function toNumber(value) {
    return value === null || value === undefined ? null : Number(value);
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var spec = JSON.parse(source.textContent);
    var style = getComputedStyle(document.documentElement);
    var color = style.getPropertyValue("--primary").trim() || "#79aec8";
    var text = style.getPropertyValue("--body-quiet-color").trim() || "#666";
    new window.Chart(canvas, {
      type: spec.type || "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (dataset) {
          return {
            label: dataset.label,
            data: dataset.data.map(toNumber),
            backgroundColor: color,
            borderColor: color,
            spanGaps: false,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: spec.datasets.length > 1, labels: { color: text } } },
        scales: {
          x: { ticks: { color: text, maxRotation: 0, autoSkip: true } },
          y: {
            beginAtZero: true,
            ticks: { color: text },
            title: { display: Boolean(spec.y_title), text: spec.y_title || "", color: text },
          },
        },
      },
    });
  }

  function drawAll() {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
