// The try-it form: POST one instance to /predict and show the answer: the class with its
// probabilities or decision scores as bars, the class alone, or a regressor's value.
"use strict";

(function () {
  const form = document.getElementById("predict-form");
  if (!form) return; // the "model not ready" page has no form

  const input = document.getElementById("instance");
  const button = document.getElementById("submit");
  const errorBox = document.getElementById("error");
  const result = document.getElementById("result");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    result.hidden = true;
  }

  function readInstance() {
    if (form.dataset.kind === "text") return input.value;
    try {
      return JSON.parse(input.value);
    } catch (err) {
      throw new Error("The row is not valid JSON: " + err.message);
    }
  }

  // A number for people: at most `digits` significant digits, no trailing zeros.
  function formatNumber(x, digits = 6) {
    return String(Number.parseFloat(Number(x).toPrecision(digits)));
  }

  // One bar per entry: `width` in [0, 1], `text` beside it; `top` marks the predicted class.
  function bar(name, width, text, top, negative) {
    const row = document.createElement("div");
    row.className = "bar" + (top ? " top" : "") + (negative ? " negative" : "");
    row.dataset.class = name;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    label.title = name;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = (width * 100).toFixed(2) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = text;
    row.append(label, track, value);
    return row;
  }

  function probabilityBars(prediction) {
    const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    return entries.map(([name, p]) => {
      const row = bar(name, p, (p * 100).toFixed(1) + "%", name === String(prediction.label), false);
      row.dataset.probability = String(p);
      return row;
    });
  }

  // Scores are unbounded and may be negative: bars are relative to the largest magnitude.
  function scoreBars(prediction) {
    const entries = Object.entries(prediction.scores).sort((a, b) => b[1] - a[1]);
    const largest = Math.max(...entries.map(([, s]) => Math.abs(s)), 1e-12);
    return entries.map(([name, s]) => {
      const row = bar(name, Math.abs(s) / largest, formatNumber(s, 4), name === String(prediction.label), s < 0);
      row.dataset.score = String(s);
      return row;
    });
  }

  function render(body) {
    const prediction = body.predictions[0];
    const title = document.getElementById("result-title");
    const headline = document.getElementById("result-label");
    const bars = document.getElementById("bars");
    const note = document.getElementById("bars-note");
    bars.replaceChildren();
    note.hidden = true;
    if ("value" in prediction) {
      title.textContent = "Predicted value";
      headline.textContent = formatNumber(prediction.value);
      headline.dataset.value = String(prediction.value);
    } else {
      title.textContent = "Prediction";
      headline.textContent = String(prediction.label);
      if (prediction.probabilities) {
        bars.setAttribute("aria-label", "class probabilities");
        bars.append(...probabilityBars(prediction));
      } else if (prediction.scores) {
        bars.setAttribute("aria-label", "decision scores");
        bars.append(...scoreBars(prediction));
        const names = Object.keys(prediction.scores);
        note.textContent = names.length === 1
          ? "Decision score of class " + names[0] + ": above 0 predicts it, below 0 the other class."
          : "Decision scores: the highest wins; bars show their size, orange ones are negative.";
        note.hidden = false;
      }
    }
    document.getElementById("result-version").textContent = body.model.name + " " + body.model.version;
    errorBox.hidden = true;
    result.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let instance;
    try {
      instance = readInstance();
    } catch (err) {
      showError(err.message);
      return;
    }
    button.disabled = true;
    try {
      const response = await fetch("/predict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ instances: [instance] }),
      });
      const body = await response.json();
      if (!response.ok) {
        showError(body.error ? body.error.message : "HTTP " + response.status);
      } else {
        render(body);
      }
    } catch (err) {
      showError("The service did not answer: " + err.message);
    } finally {
      button.disabled = false;
    }
  });
})();
