"""The captioning demo page: one self-contained HTML document (no external scripts, styles or fonts).

``render_page(title, details, max_upload_bytes)`` fills in the parts that vary. The page posts the
chosen image's bytes to ``/api/caption?name=FILE`` and shows the JSON answer of ``apps.demo``:
the caption, the alternatives and, for each generated word, its attention heatmap; or the error.
"""

from __future__ import annotations

import html
import json

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
  .details { color: #666; font-size: 0.9rem; margin-top: 0; }
  #drop { border: 2px dashed #999; border-radius: 8px; padding: 1.5rem; text-align: center; margin: 1rem 0; }
  #drop.over { border-color: #2a6ad8; background: #eef4ff; }
  #status { color: #555; min-height: 1.2em; }
  #error { display: none; background: #fde8e8; border: 1px solid #d33; color: #900; padding: 0.7rem;
           border-radius: 6px; margin: 1rem 0; }
  #result { display: none; }
  #top { display: flex; gap: 1.5rem; align-items: flex-start; flex-wrap: wrap; }
  #preview { max-width: 256px; border-radius: 4px; }
  #caption { font-size: 1.4rem; margin: 0 0 0.5rem; }
  #alternatives li { color: #444; }
  .score { color: #888; font-size: 0.85em; }
  #attention { display: flex; flex-wrap: wrap; gap: 0.8rem; margin-top: 1rem; }
  figure { margin: 0; text-align: center; }
  figure img { width: 128px; border-radius: 4px; display: block; }
  figcaption { font-family: monospace; margin-top: 0.2rem; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p class="details">__DETAILS__</p>
<div id="drop">
  <p>Choose an image or drop it here (at most __MAX_MB__ MB).</p>
  <input type="file" id="file" accept="image/*">
</div>
<p id="status" aria-live="polite"></p>
<div id="error" role="alert"></div>
<div id="result">
  <div id="top">
    <img id="preview" alt="the uploaded image">
    <div>
      <p id="caption"></p>
      <p>Alternatives:</p>
      <ol id="alternatives"></ol>
    </div>
  </div>
  <h2>Where the model looked, word by word</h2>
  <div id="attention"></div>
</div>
<script>
const MAX_BYTES = __MAX_BYTES__;
const $ = (id) => document.getElementById(id);

function showError(message) {
  $("status").textContent = "";
  $("result").style.display = "none";
  $("error").textContent = message;
  $("error").style.display = "block";
}

function scoreText(score) {
  const span = document.createElement("span");
  span.className = "score";
  span.textContent = score === null ? " (unfinished)" : " (score " + score.toFixed(3) + ")";
  return span;
}

function showResult(answer) {
  $("error").style.display = "none";
  $("status").textContent = "";
  $("preview").src = answer.image;
  $("caption").textContent = answer.caption;
  $("caption").appendChild(scoreText(answer.score));
  const alternatives = $("alternatives");
  alternatives.replaceChildren();
  for (const alternative of answer.alternatives) {
    const item = document.createElement("li");
    item.textContent = alternative.caption;
    item.appendChild(scoreText(alternative.score));
    alternatives.appendChild(item);
  }
  const attention = $("attention");
  attention.replaceChildren();
  for (const word of answer.words) {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.className = "attention";
    image.src = word.heatmap;
    image.alt = "attention for " + word.word;
    const label = document.createElement("figcaption");
    label.textContent = word.word;
    figure.append(image, label);
    attention.appendChild(figure);
  }
  if (!answer.words.length) {
    attention.textContent = answer.attention_note || "No attention maps for this model.";
  }
  $("result").style.display = "block";
}

async function upload(file) {
  if (!file) return;
  if (file.size > MAX_BYTES) {
    showError(file.name + ": the file is too large (" + (file.size / 1048576).toFixed(1) +
              " MB; the limit is __MAX_MB__ MB).");
    return;
  }
  $("error").style.display = "none";
  $("status").textContent = "Captioning " + file.name + "...";
  try {
    const response = await fetch("api/caption?name=" + encodeURIComponent(file.name),
                                 {method: "POST", body: file, headers: {"Content-Type": "application/octet-stream"}});
    const answer = await response.json();
    if (!response.ok) { showError(answer.error || ("the server answered " + response.status)); return; }
    showResult(answer);
  } catch (error) {
    showError("Could not reach the demo server: " + error);
  }
}

$("file").addEventListener("change", (event) => upload(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});
</script>
</body>
</html>
"""

BYTES_PER_MB = 1024 * 1024


def render_page(title: str, details: str, max_upload_bytes: int) -> str:
    """The page's HTML, with ``title`` and ``details`` escaped and the upload limit filled in."""
    return (
        PAGE_TEMPLATE.replace("__TITLE__", html.escape(title))
        .replace("__DETAILS__", html.escape(details))
        .replace("__MAX_BYTES__", json.dumps(max_upload_bytes))
        .replace("__MAX_MB__", f"{max_upload_bytes / BYTES_PER_MB:.3g}")
    )
