"""The README.md of a Hub folder: a pipeline's ``ModelCard`` as the Hub shows model cards.

YAML front matter (huggingface_hub's ``ModelCardData``: ``library_name``, ``pipeline_tag``, tags, the
validation metrics and a ``model-index`` of them when the training data is recorded), then the task, the
encoder and decoder, the parameters, the training data, the metrics, the intended use and limits, and how
to load the model in Python and with the CLI. Like the card, it never names a local path.
"""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCardData

from multimodal_s2s.checkpoint import NOT_RECORDED, Task
from multimodal_s2s.checkpoint.hub import LIBRARY_NAME
from multimodal_s2s.pipelines.card import ModelCard

#: The Hub's pipeline tag of each task.
PIPELINE_TAGS = {
    Task.CAPTIONING: "image-to-text",
    Task.ASR: "automatic-speech-recognition",
    Task.SEGMENTATION: "image-segmentation",
    Task.TRANSLATION: "translation",
}
#: task -> (pipeline class, a call on an example input, the CLI command on the same input).
USAGE = {
    Task.CAPTIONING: ("Captioner", 'model(["photo.jpg"])[0].text', "mms2s caption photo.jpg"),
    Task.ASR: ("Transcriber", 'model(["talk.flac"])[0].text', "mms2s transcribe talk.flac"),
    Task.SEGMENTATION: ("Segmenter", 'model(["photo.jpg"])[0].label_image()', "mms2s segment photo.jpg"),
    Task.TRANSLATION: ("Translator", 'model(["a line of text"])[0].text', "mms2s translate lines.txt"),
}
#: What each task's model is for and where it fails.
INTENDED_USE = {
    Task.CAPTIONING: "Short captions of images like its training images, in the words of its vocabulary only: "
    "images unlike them get fluent captions that may be wrong.",
    Task.ASR: "Transcripts of speech like its training recordings (language, voices, recording conditions); "
    "recordings of any length are cut into windows of speech. Other accents, noise and words it never heard "
    "raise its error rate.",
    Task.SEGMENTATION: "A class for each pixel of images like its training images, among its classes only: "
    "things of other classes are labelled as one of them.",
    Task.TRANSLATION: "Translations of text like its training text, in its language pair and vocabulary; "
    "much longer inputs than it was trained on are translated worse.",
}
#: Where the snippets name the model when no repository id is given.
PLACEHOLDER_ID = "USER/NAME"


def hub_readme(card: ModelCard, repo_id: str | None = None) -> str:
    """README.md of a Hub folder for the model of ``card``; ``repo_id``: its repository ("user/name") when known."""
    name = repo_id or PLACEHOLDER_ID
    front = _card_data(card, name).to_yaml()
    model = card.model
    lines = [
        f"---\n{front}\n---\n",
        f"# {name}\n",
        f"A {card.task.value} model of multimodal_s2s ({model.encoder} encoder, "
        f"{model.decoder} decoder, {card.parameters:,} parameters).\n",
        "## Model\n",
        "| | |\n|---|---|",
        *(f"| {label} | {_cell(text)} |" for label, text in [*card.rows(), ("Parameters", f"{card.parameters:,}")]),
        "\n## Training data\n",
        f"{card.trained_on}.\n",
        "## Metrics\n",
        _metrics_text(card),
        "## Intended use and limits\n",
        f"{INTENDED_USE[card.task]} It was trained on {card.trained_on}; the validation figures above are on "
        "that data's own validation split, so expect lower ones on other data.\n",
        "## How to use\n",
        _usage(card.task, name),
    ]
    return "\n".join(lines)


def _card_data(card: ModelCard, name: str) -> ModelCardData:
    metrics = _shown_metrics(card)
    tag = PIPELINE_TAGS[card.task]
    data = card.data.name
    results = [
        EvalResult(task_type=tag, dataset_type=data, dataset_name=data, dataset_split="validation",
                   metric_type=metric, metric_value=value)
        for metric, value in metrics.items()
    ] if data != NOT_RECORDED else []
    return ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag=tag, tags=[LIBRARY_NAME, card.task.value, card.model.encoder,
                                                           card.model.decoder],
        metrics=list(metrics) or None, model_name=name if results else None, eval_results=results or None,
    )


def _shown_metrics(card: ModelCard) -> dict[str, float]:
    """The validation metrics without their "val/" prefix, the losses left out."""
    return {key.removeprefix("val/"): value for key, value in sorted(card.metrics.items()) if not key.endswith("loss")}


def _metrics_text(card: ModelCard) -> str:
    metrics = _shown_metrics(card)
    if not metrics:
        return f"Validation metrics: {NOT_RECORDED}.\n"
    rows = "\n".join(f"| {metric} | {value:.4g} |" for metric, value in metrics.items())
    return f"On the validation split when the weights were saved:\n\n| metric | value |\n|---|---|\n{rows}\n"


def _usage(task: Task, name: str) -> str:
    pipeline, call, command = USAGE[task]
    return (
        "```python\nimport multimodal_s2s as mms\n\n"
        f'model = mms.{pipeline}.from_pretrained("{name}")  # or the folder that holds this file\n'
        f"{call}\n```\n\n"
        f"```bash\n{command} --checkpoint {name}\n```\n\n"
        "A repository id is downloaded into the Hugging Face cache once; with `HF_HUB_OFFLINE=1` only the cache "
        "is read. Only JSON and safetensors files are read: nothing is unpickled.\n"
    )


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
