// The try-it form: POST one instance to /predict and draw the class probabilities as bars.
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

  function render(body) {
    const prediction = body.predictions[0];
    document.getElementById("result-label").textContent = String(prediction.label);
    document.getElementById("result-version").textContent = body.model.name + " " + body.model.version;
    const bars = document.getElementById("bars");
    bars.replaceChildren();
    const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [name, p] of entries) {
      const row = document.createElement("div");
      row.className = "bar" + (name === String(prediction.label) ? " top" : "");
      row.dataset.class = name;
      row.dataset.probability = String(p);
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = (p * 100).toFixed(2) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = (p * 100).toFixed(1) + "%";
      row.append(label, track, value);
      bars.appendChild(row);
    }
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
