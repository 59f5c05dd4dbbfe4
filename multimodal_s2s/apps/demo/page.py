"""The demo pages: each one self-contained HTML document (no external scripts, styles or fonts).

The page is package data: ``static/page.html`` (a ``string.Template``), ``static/page.css`` and
``static/page.js``. ``render_page(card, examples, max_upload_bytes)`` fills in the model card, the
example images and the upload limit (all escaped), with the style and the script inline. The script
and the style never change, so the page's Content Security Policy (``PAGE_SECURITY_POLICY``) allows
exactly them by hash, and nothing else inline. The script posts an image's bytes to
``api/caption?name=FILE`` and shows the JSON answer: the caption, its words (click one to see its
heatmap full size), the beam's alternatives with scores, all heatmaps, or the error; model output is
only ever inserted as text. The colour bar's PNG is drawn when the first page is rendered. The live
transcription page (``render_live_page``: ``static/live.*``, its own policy) streams the microphone's
16-bit PCM over a websocket to ``api/transcribe?rate=HZ`` and shows the committed words and, in grey,
the tail.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from importlib import resources
from string import Template

from multimodal_s2s.apps.demo.examples import Example
from multimodal_s2s.apps.demo.heatmaps import DISPLAY_SIDE, png_data_url
from multimodal_s2s.heatmaps import colour_bar
from multimodal_s2s.pipelines import ModelCard

BYTES_PER_MB = 1024 * 1024
STATIC = resources.files(__package__) / "static"


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


#: The style and the script exactly as they stand between their tags (the policy hashes this text).
STYLE = "\n" + Template(_static("page.css")).substitute(side=DISPLAY_SIDE)
SCRIPT = "\n" + _static("page.js")
PAGE_TEMPLATE = Template(_static("page.html"))


def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def security_policy(script: str, style: str) -> str:
    """Only the page's own script and style run; images from the server or data URLs; fetches and
    websockets to the server."""
    return (
        f"default-src 'none'; script-src {_source_hash(script)}; style-src {_source_hash(style)}; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


PAGE_SECURITY_POLICY = security_policy(SCRIPT, STYLE)
#: The live transcription page (``render_live_page``): its style, script, template and policy.
LIVE_STYLE, LIVE_SCRIPT = "\n" + _static("live.css"), "\n" + _static("live.js")
LIVE_TEMPLATE = Template(_static("live.html"))
LIVE_PAGE_SECURITY_POLICY = security_policy(LIVE_SCRIPT, LIVE_STYLE)


@functools.cache
def colour_bar_url() -> str:
    """The colour bar as a PNG data URL, drawn once, when the first page is rendered."""
    return png_data_url(colour_bar())


def card_rows(card: ModelCard) -> str:
    """The model card as the rows of a ``<dl>``, escaped."""
    return "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>" for label, text in card.rows())


def render_page(card: ModelCard, examples: list[Example], max_upload_bytes: int) -> str:
    """The page's HTML: the model card, the examples (served at ``examples/FILE``) and the upload limit."""
    buttons = "".join(
        f'<button type="button" class="example" data-file="{html.escape(example.file)}" '
        f'data-references="{html.escape(" | ".join(example.references))}">'
        f'<img src="examples/{html.escape(example.file)}" alt="example {index + 1}">'
        f"<span>{html.escape(example.references[0])}</span></button>"
        for index, example in enumerate(examples)
    )
    return PAGE_TEMPLATE.substitute(  # one pass: the values are not rescanned
        style=STYLE,
        script=SCRIPT,
        card=card_rows(card),
        trained_on=html.escape(card.trained_on),
        examples=buttons,
        colour_bar=colour_bar_url(),
        max_bytes=str(max_upload_bytes),
        max_mb=f"{max_upload_bytes / BYTES_PER_MB:.3g}",
    )


def render_live_page(card: ModelCard, max_stream_seconds: float) -> str:
    """The live transcription page's HTML: the model card and the longest recording (s)."""
    return LIVE_TEMPLATE.substitute(
        style=LIVE_STYLE,
        script=LIVE_SCRIPT,
        card=card_rows(card),
        trained_on=html.escape(card.trained_on),
        max_seconds=f"{max_stream_seconds:g}",
    )
