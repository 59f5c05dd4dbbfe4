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
  $("view").alt = word ? "where the model looked when it wrote \u201c" + word.word + "\u201d" : "the image";
  $("view-label").textContent = word ? "Where the model looked for \u201c" + word.word + "\u201d" : "The image";
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
  $("uniform-tick").textContent = at > 0.5 ? even + " \u25b2" : "\u25b2 " + even;
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
