"""The captioning demo page: one self-contained HTML document (no external scripts, styles or fonts).

``render_page(card, examples, max_upload_bytes)`` fills in the model card, the example images and the
upload limit (all escaped). The script and the style never change, so the page's Content Security
Policy (``PAGE_SECURITY_POLICY``) allows exactly them by hash, and nothing else inline. The script
posts an image's bytes to ``api/caption?name=FILE`` and shows the JSON answer: the caption, its words
(click one to see its heatmap full size), the beam's alternatives with scores, all heatmaps, or the
error; model output is only ever inserted as text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re

from multimodal_s2s.apps.demo.examples import Example
from multimodal_s2s.apps.demo.heatmaps import DISPLAY_SIDE, png_data_url
from multimodal_s2s.heatmaps import colour_bar
from multimodal_s2s.pipelines import ModelCard

BYTES_PER_MB = 1024 * 1024

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 64rem; padding: 0.5rem 1.5rem 3rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0.8rem 0 0.2rem; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 0.6rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
.lead { color: #444; margin-top: 0; }
.small { font-size: 0.85rem; color: #555; }
[hidden] { display: none !important; }
#card { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0; }
#card dt { color: #666; }
#card dd { margin: 0; }
.note { background: #fff6e5; border-left: 4px solid #e8a33d; padding: 0.6rem 0.8rem; }
#examples { display: flex; gap: 0.8rem; flex-wrap: wrap; }
.example { display: flex; flex-direction: column; justify-content: flex-start; width: 9rem; padding: 0.3rem;
           border: 1px solid #ccc; border-radius: 6px; background: #fff; cursor: pointer; text-align: left;
           font: inherit; font-size: 0.8rem; }
.example img { width: 100%; display: block; border-radius: 3px; image-rendering: pixelated; }
#drop { border: 2px dashed #999; border-radius: 8px; padding: 1rem; text-align: center; margin: 1rem 0; }
#drop.over { border-color: #2a6ad8; background: #eef4ff; }
#status { color: #555; min-height: 1.2em; }
#error { background: #fde8e8; border: 1px solid #d33; color: #900; padding: 0.7rem; border-radius: 6px; }
#layout { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
#viewer { margin: 0; width: __SIDE__px; max-width: 100%; }
#view { width: 100%; display: block; border-radius: 4px; background: #eee; }
#view-label { font-weight: 600; margin: 0.3rem 0; }
#colour-bar { width: 100%; height: 14px; display: block; border: 1px solid #999; box-sizing: border-box; }
#ticks { position: relative; height: 2.5rem; font-size: 0.8rem; color: #444; }
#ticks span { position: absolute; top: 0.1rem; white-space: nowrap; }
#zero-tick { left: 0; }
#top-tick { right: 0; }
#ticks #uniform-tick { top: 1.2rem; }
#text { flex: 1; min-width: 16rem; }
#caption { font-size: 1.4rem; margin: 0; }
.score { color: #777; font-size: 0.85rem; }
button.word { font: inherit; margin: 0 0.3rem 0.3rem 0; padding: 0.1rem 0.5rem; border: 1px solid #bbb;
              border-radius: 4px; background: #f7f7f7; cursor: pointer; }
#attention { display: flex; flex-wrap: wrap; gap: 0.6rem; }
button.thumb { padding: 0.2rem; border: 1px solid #ccc; border-radius: 6px; background: #fff; cursor: pointer;
               font-family: monospace; }
button.thumb img { width: 120px; display: block; border-radius: 3px; }
button[aria-pressed="true"] { border-color: #ff6e00; background: #fff0e5; outline: 2px solid #ff6e00; }
""".replace("__SIDE__", str(DISPLAY_SIDE))

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_BYTES = Number(document.body.dataset.maxBytes);
const MAX_MB = document.body.dataset.maxMb;
let shown = null;  // the answer on the page

function showError(message) {
  $("status").textContent = "";
  $("result").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

function scoreText(score) {
  return score === null ? "(unfinished)" : "score " + score.toFixed(3);
}

function percent(share) {
  return (100 * share).toFixed(share < 0.1 ? 1 : 0) + "%";
}

function select(index) {  // index of a word, or -1 for the image itself
  const word = index < 0 ? null : shown.words[index];
  $("view").src = word ? word.heatmap : shown.image;
  $("view").alt = word ? "where the model looked when it wrote \\u201c" + word.word + "\\u201d" : "the image";
  $("view-label").textContent = word ? "Where the model looked for \\u201c" + word.word + "\\u201d" : "The image";
  $("scale").hidden = !word;
  for (const button of document.querySelectorAll("[data-word]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.word) === index));
  }
}

function wordButton(word, index, thumbnail) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = thumbnail ? "thumb" : "word";
  button.dataset.word = String(index);
  button.title = "show where the model looked for this word";
  if (thumbnail) {
    const image = document.createElement("img");
    image.className = "attention";
    image.src = word.heatmap;
    image.alt = "attention for " + word.word;
    const label = document.createElement("div");
    label.textContent = word.word;
    button.append(image, label);
  } else {
    button.textContent = word.word;
  }
  button.addEventListener("click", () => select(index));
  return button;
}

function showScale(scale) {  // the top of the scale; below the bar, the mark of an even spread
  const at = Math.min(scale.uniform / scale.top, 1);
  const even = "even spread: " + percent(scale.uniform);
  $("top-tick").textContent = percent(scale.top);
  $("uniform-tick").style.left = (100 * at) + "%";
  $("uniform-tick").style.transform = at > 0.5 ? "translateX(calc(0.35em - 100%))" : "translateX(-0.35em)";
  $("uniform-tick").textContent = at > 0.5 ? even + " \\u25b2" : "\\u25b2 " + even;
}

function showResult(answer, references) {
  shown = answer;
  $("error").hidden = true;
  $("status").textContent = "";
  $("caption").textContent = answer.caption;
  $("caption-score").textContent = scoreText(answer.score);
  $("reference").hidden = !references;
  $("reference").textContent = references ? "The scene was generated from: " + references : "";
  const alternatives = $("alternatives");
  alternatives.replaceChildren();
  for (const alternative of answer.alternatives) {
    const item = document.createElement("li");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = " (" + scoreText(alternative.score) + ")";
    item.append(alternative.caption, score);
    alternatives.appendChild(item);
  }
  $("words").replaceChildren(...answer.words.map((word, index) => wordButton(word, index, false)));
  $("attention").replaceChildren(...answer.words.map((word, index) => wordButton(word, index, true)));
  $("maps").hidden = !answer.words.length;
  $("attention-note").hidden = Boolean(answer.words.length);
  $("attention-note").textContent = answer.attention_note || "";
  if (answer.heatmap_scale) showScale(answer.heatmap_scale);
  select(-1);
  $("result").hidden = false;
}

async function caption(file, name, references) {
  if (!file) return;
  if (file.size > MAX_BYTES) {
    showError(name + ": the file is too large (" + (file.size / 1048576).toFixed(1) +
              " MB; the limit is " + MAX_MB + " MB).");
    return;
  }
  $("error").hidden = true;
  $("status").textContent = "Captioning " + name + "...";
  try {
    const response = await fetch("api/caption?name=" + encodeURIComponent(name),
                                 {method: "POST", body: file, headers: {"Content-Type": "application/octet-stream"}});
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) { showError(answer.error || ("the server answered " + response.status)); return; }
    showResult(answer, references);
  } catch (error) {
    showError("Could not reach the demo server: " + error);
  }
}

for (const example of document.querySelectorAll("#examples button")) {
  example.addEventListener("click", async () => {
    const response = await fetch("examples/" + encodeURIComponent(example.dataset.file));
    if (!response.ok) { showError("could not load the example " + example.dataset.file); return; }
    caption(await response.blob(), example.dataset.file, example.dataset.references);
  });
}
$("show-image").addEventListener("click", () => select(-1));
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) caption(file, file.name, null);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) caption(file, file.name, null);
});
"""

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Image captioning demo</title>
<style>__STYLE__</style>
</head>
<body data-max-bytes="__MAX_BYTES__" data-max-mb="__MAX_MB__">
<h1>Image captioning demo</h1>
<p class="lead">A model writes a caption for an image one word at a time. For each word, a heatmap shows
which parts of the image it attended to while it chose that word.</p>

<section aria-labelledby="about-title">
<h2 id="about-title">About this model</h2>
<dl id="card">__CARD__</dl>
<p class="note">The model can only describe what its training data showed it
(<span id="trained-on">__TRAINED_ON__</span>), in the words it learnt there. Any other image still
gets a caption in those words, as confident as any: compare it with what you see.</p>
</section>

<section aria-labelledby="try-title">
<h2 id="try-title">Try it</h2>
<p>Click an example (scenes that the model never saw in training, with the caption each was generated
from), or choose an image of your own.</p>
<div id="examples">__EXAMPLES__</div>
<div id="drop"><label for="file">Choose an image or drop it here (at most __MAX_MB__ MB):</label>
<input type="file" id="file" accept="image/*"></div>
<p id="status" aria-live="polite"></p>
<div id="error" role="alert" hidden></div>
</section>

<section id="result" aria-labelledby="result-title" hidden>
<h2 id="result-title">What the model wrote</h2>
<div id="layout">
<figure id="viewer">
<img id="view" alt="">
<figcaption id="view-label"></figcaption>
<div id="scale" hidden>
<img id="colour-bar" src="__COLOUR_BAR__" alt="colour scale, from no attention to the most">
<div id="ticks"><span id="zero-tick">0%</span><span id="uniform-tick"></span><span id="top-tick"></span></div>
<p class="small">The photo in grey; orange shows the share of the word's attention that each part of the
image got (one scale for all the words of this caption). The mark is what each part would get if the
model looked everywhere evenly.</p>
</div>
</figure>
<div id="text">
<p id="caption"></p>
<p class="score" id="caption-score"></p>
<p class="small" id="reference" hidden></p>
<div id="maps">
<p class="small">The words as the model wrote them; click one to see where it looked, or
<button type="button" id="show-image" class="word">the image</button> to see the image again.</p>
<div id="words"></div>
</div>
<p class="small" id="attention-note" hidden></p>
<h3>The beam's alternatives</h3>
<ol id="alternatives"></ol>
<p class="small">Beam search follows several likely captions at once and keeps the best. A score is the
caption's log-probability, adjusted for its length: the closer to 0, the likelier the model finds it.</p>
</div>
</div>
<h3>Where the model looked, word by word</h3>
<div id="attention"></div>
</section>
<script>__SCRIPT__</script>
</body>
</html>
"""


def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


#: Only this page's own script and style run; images from the server or data URLs; fetches to the server.
PAGE_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_source_hash(SCRIPT)}; style-src {_source_hash(STYLE)}; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COLOUR_BAR_URL = png_data_url(colour_bar())
PLACEHOLDER = re.compile(r"__[A-Z_]+__")


def render_page(card: ModelCard, examples: list[Example], max_upload_bytes: int) -> str:
    """The page's HTML: the model card, the examples (served at ``examples/FILE``) and the upload limit."""
    rows = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>" for label, text in card.rows())
    buttons = "".join(
        f'<button type="button" class="example" data-file="{html.escape(example.file)}" '
        f'data-references="{html.escape(" | ".join(example.references))}">'
        f'<img src="examples/{html.escape(example.file)}" alt="example {index + 1}">'
        f"<span>{html.escape(example.references[0])}</span></button>"
        for index, example in enumerate(examples)
    )
    values = {
        "__STYLE__": STYLE,
        "__SCRIPT__": SCRIPT,
        "__CARD__": rows,
        "__TRAINED_ON__": html.escape(card.trained_on),
        "__EXAMPLES__": buttons,
        "__COLOUR_BAR__": COLOUR_BAR_URL,
        "__MAX_BYTES__": str(max_upload_bytes),
        "__MAX_MB__": f"{max_upload_bytes / BYTES_PER_MB:.3g}",
    }
    return PLACEHOLDER.sub(lambda match: values[match.group(0)], PAGE_TEMPLATE)  # one pass: values are not rescanned
