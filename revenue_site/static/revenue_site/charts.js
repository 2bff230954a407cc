/* Draws every <canvas data-chart="ID"> from the JSON in the element #ID (Django's json_script),
   and every <canvas data-chart-spec="JSON"> from the JSON in that attribute (no <script>
   element at all). Loaded after the vendored Chart.js by revenue_site/includes/chartjs.html.
   The JSON is data only:
     {type, labels, datasets: [{label, data, type?, color?, axis?}], y_title?,
      stacked?, y1_title?}
   Values may be strings (exact decimals from Django); they are drawn as numbers, null leaves a
   gap. Optional, per dataset: `type` ("line" inside a bar chart makes a mixed chart), `color`
   (a name from PALETTE below; by default the theme's primary colour for the first dataset and
   the palette in order for the others), `axis: "y1"` (drawn against a second scale on the
   right, titled `y1_title`, never stacked). `stacked: true` stacks the bars of the main scale
   (negative values stack downwards). */
(function () {
  "use strict";

  // Named colours a chart's JSON may ask for (semantic names first, then plain hues).
  var PALETTE = {
    new: "#2e7d32",
    expansion: "#66bb6a",
    reactivation: "#26a69a",
    contraction: "#ef6c00",
    churn: "#c62828",
    line: "#1f4e79",
    revenue: "#417690",
    margin: "#8e6bbf",
    grey: "#9e9e9e",
  };
  var ORDER = ["revenue", "margin", "new", "churn", "expansion", "contraction", "grey"];

  function toNumber(value) {
    return value === null || value === undefined ? null : Number(value);
  }

  function colorOf(dataset, index, primary) {
    if (dataset.color && PALETTE[dataset.color]) {
      return PALETTE[dataset.color];
    }
    return index === 0 ? primary : PALETTE[ORDER[(index - 1) % ORDER.length]];
  }

  function specOf(canvas) {
    if (canvas.dataset.chartSpec) {
      return JSON.parse(canvas.dataset.chartSpec);
    }
    var source = document.getElementById(canvas.dataset.chart);
    return source ? JSON.parse(source.textContent) : null;
  }

  function draw(canvas) {
    var spec = specOf(canvas);
    if (!spec || typeof window.Chart === "undefined") {
      return;
    }
    var style = getComputedStyle(document.documentElement);
    var primary = style.getPropertyValue("--primary").trim() || "#79aec8";
    var text = style.getPropertyValue("--body-quiet-color").trim() || "#666";
    var stacked = Boolean(spec.stacked);
    var secondAxis = spec.datasets.some(function (dataset) {
      return dataset.axis === "y1";
    });
    var scales = {
      x: { stacked: stacked, ticks: { color: text, maxRotation: 0, autoSkip: true } },
      y: {
        stacked: stacked,
        beginAtZero: true,
        ticks: { color: text },
        title: { display: Boolean(spec.y_title), text: spec.y_title || "", color: text },
      },
    };
    if (secondAxis) {
      scales.y1 = {
        position: "right",
        stacked: false,
        beginAtZero: true,
        grid: { drawOnChartArea: false },
        ticks: { color: text },
        title: { display: Boolean(spec.y1_title), text: spec.y1_title || "", color: text },
      };
    }
    new window.Chart(canvas, {
      type: spec.type || "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (dataset, index) {
          var color = colorOf(dataset, index, primary);
          var drawn = {
            label: dataset.label,
            data: dataset.data.map(toNumber),
            backgroundColor: color,
            borderColor: color,
            spanGaps: false,
          };
          if (dataset.type) {
            drawn.type = dataset.type;
          }
          if (dataset.axis === "y1") {
            drawn.yAxisID = "y1";
            drawn.order = -1; // a line over the bars
          }
          return drawn;
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: spec.datasets.length > 1, labels: { color: text } } },
        scales: scales,
      },
    });
  }

  function drawAll() {
    document.querySelectorAll("canvas[data-chart], canvas[data-chart-spec]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
