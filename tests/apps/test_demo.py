"""The captioning demo with a tiny trained checkpoint: its JSON answer, its model card, its heatmaps,
its bundled examples, and the page end to end in headless Chromium (click an example, then a word;
upload a file; the error messages)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from captioning_fixtures import TINY_GRID, save_tiny_checkpoint, write_image
from demo_fixtures import headless_chromium, post_image, serving
from PIL import Image

from multimodal_s2s.apps import demo
from multimodal_s2s.apps.common import EXIT_BAD_SETUP
from multimodal_s2s.apps.demo.captioner import DemoCaptioner
from multimodal_s2s.apps.demo.examples import EXAMPLES_DIR, bundled_examples, write_examples
from multimodal_s2s.apps.demo.page import PAGE_SECURITY_POLICY, SCRIPT, render_page
from multimodal_s2s.apps.demo.service import Access, Limits, create_app
from multimodal_s2s.checkpoint import NOT_RECORDED, TrainingData, read_checkpoint
from multimodal_s2s.heatmaps import COLOUR_BAR_GREY, HEAT_COLOUR, HEAT_OPACITY, colour_bar, heatmaps

BEAM = 2
MAX_UPLOAD_BYTES = 50_000
PAGE_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_tiny_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def server(checkpoint):
    """The demo of the tiny checkpoint on a free localhost port; yields its base URL and address."""
    captioner = DemoCaptioner.load(checkpoint, "cpu", beam_size=BEAM, n_best=BEAM)
    app = create_app(captioner, captioner.model_card(), Limits(max_upload_bytes=MAX_UPLOAD_BYTES), Access())
    with serving(app) as address:
        yield f"http://{address[0]}:{address[1]}/", address


def test_answer_has_caption_alternatives_and_one_heatmap_per_word_on_one_scale(server, tmp_path):
    status, answer = post_image(server[1], write_image(tmp_path / "x.png").read_bytes(), "x.png")
    assert status == 200
    assert answer["caption"] and len(answer["alternatives"]) == BEAM
    assert answer["alternatives"][0]["caption"] == answer["caption"]
    assert [w["word"] for w in answer["words"] if not w["word"].startswith("<")] == answer["caption"].split()
    assert all(word["heatmap"].startswith("data:image/png;base64,") for word in answer["words"])
    assert answer["image"].startswith("data:image/png;base64,")
    scale = answer["heatmap_scale"]
    assert scale["uniform"] == pytest.approx(1 / (TINY_GRID[0] * TINY_GRID[1]), abs=1e-4)
    assert scale["uniform"] <= scale["top"] <= 1


def test_answer_refuses_non_images_and_oversized_uploads(server):
    status, answer = post_image(server[1], b"just some text", "notes.txt")
    assert status == 400 and answer["error"].startswith("notes.txt: not an image file")
    status, answer = post_image(server[1], b"\0" * (MAX_UPLOAD_BYTES + 1), "huge.png")
    assert status == 413 and "huge.png: the file is too large" in answer["error"]


def test_model_card_is_the_pipelines_and_says_what_it_lacks(checkpoint):
    header = read_checkpoint(checkpoint).header
    card = DemoCaptioner.load(checkpoint, "cpu", beam_size=BEAM, n_best=BEAM).model_card()
    rows = dict(card.rows())
    assert [label for label, _ in card.rows()] == ["Task", "Encoder", "Decoder", "Training data", "Image size",
                                                   "Vocabulary", "Validation", "Training", "Decoding", "Known words"]
    assert rows["Task"] == "captioning" and rows["Encoder"] == "cnn (backbone test_resnet)"
    assert rows["Decoder"] == "transformer (num_layers 1, d_model 32)" and rows["Image size"].startswith("32 x 32")
    assert rows["Vocabulary"] == "22 tokens (word tokenizer)" and "circle" in rows["Known words"].split(", ")
    assert "<eos>" not in rows["Known words"].split(", ")  # the tokenizer's special tokens are not words
    assert rows["Training data"] == card.trained_on == "procedural scenes of one or two coloured shapes " \
        f"(the suite's shapes generator): {header.data.examples} training examples"
    assert rows["Validation"].startswith("val/bleu1 = ") and "loss" not in rows["Validation"]
    assert rows["Training"] == "2 optimizer steps" and rows["Decoding"] == f"beam search, {BEAM} beams, {BEAM} " \
        "alternatives shown, no repeated 4-grams"
    rows = dict(replace(card, metrics={}, data=TrainingData(NOT_RECORDED), training_steps=None).rows())
    assert rows["Validation"] == rows["Training data"] == rows["Training"] == NOT_RECORDED


def test_heatmaps_colour_only_where_the_model_looked_on_one_scale():
    picture = Image.new("RGB", (8, 4), (0, 0, 255))  # blue: grey 29 once its colour is gone
    maps = torch.zeros(2, 1, 2)
    maps[0, 0, 0], maps[1, 0, 0] = 0.5, 0.25  # both look left; the second half as much
    first, second = (np.asarray(image, dtype=float) for image in heatmaps(picture, maps, top=0.5))
    grey = 29.0
    assert np.allclose(first[:, -1], grey, atol=1)  # the right edge got nothing: plain grey
    expected = grey * (1 - HEAT_OPACITY) + np.array(HEAT_COLOUR) * HEAT_OPACITY
    assert np.allclose(first[:, 0], expected, atol=1)  # the left edge is at the top of the scale
    assert (second[:, 0, 0] < first[:, 0, 0]).all()  # the same place, less attention, less colour
    bar = np.asarray(colour_bar(), dtype=float)
    assert np.allclose(bar[:, 0], COLOUR_BAR_GREY, atol=1) and bar[0, -1, 0] > bar[0, -1, 2]


def test_bundled_examples_are_the_generators_test_scenes(tmp_path):
    """Regenerate them with ``write_examples(EXAMPLES_DIR)`` when the generator changes."""
    assert write_examples(tmp_path) == bundled_examples()
    for example in bundled_examples():
        with Image.open(tmp_path / example.file) as fresh, Image.open(EXAMPLES_DIR / example.file) as bundled:
            assert np.array_equal(np.asarray(fresh), np.asarray(bundled)), example.file


def test_page_escapes_what_it_shows_and_allows_only_its_own_script(checkpoint):
    card = replace(DemoCaptioner.load(checkpoint, "cpu").model_card(), decoding="<script>alert(1)</script>")
    page = render_page(card, bundled_examples(), MAX_UPLOAD_BYTES)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT
    assert PAGE_SECURITY_POLICY.startswith("default-src 'none'; script-src 'sha256-")
    for tag in ("script", "style"):  # the policy allows exactly what stands between the page's tags
        (inline,) = re.findall(f"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode("utf-8")).digest()).decode("ascii")
        assert f"{tag}-src 'sha256-{digest}'" in PAGE_SECURITY_POLICY


def test_the_page_module_draws_nothing_until_a_page_is_rendered():
    code = (
        "import multimodal_s2s.heatmaps as h; h.colour_bar = lambda: 1 / 0; "
        "import multimodal_s2s.apps.demo.page as page; print(len(page.SCRIPT) > 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-500:]


def test_bad_options_and_checkpoints_are_one_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    for extra, message in [(["--max-pixels", "0"], "--max-pixels is out of range (got 0)"),
                           (["--read-timeout", "-1"], "--read-timeout is out of range (got -1.0)")]:
        assert demo.run(parser.parse_args(["captioning", "--checkpoint", "x.ckpt", *extra])) == EXIT_BAD_SETUP
        assert capsys.readouterr().err.strip() == f"error: {message}"
    missing = tmp_path / "missing.ckpt"
    assert demo.run(parser.parse_args(["captioning", "--checkpoint", str(missing)])) == EXIT_BAD_SETUP
    assert capsys.readouterr().err.strip() == f"error: {missing}: checkpoint not found"


def test_page_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chromium()
    try:
        browser.get(server[0])
        wait = WebDriverWait(browser, PAGE_TIMEOUT_S)
        card = browser.find_element(By.ID, "card").text
        assert "captioning" in card and "cnn (backbone test_resnet)" in card and "val/bleu4" in card

        example = browser.find_elements(By.CSS_SELECTOR, "#examples button")[1]
        example.click()  # the bundled example: fetched from the server, then captioned
        wait.until(EC.visibility_of_element_located((By.ID, "result")))
        assert browser.find_element(By.ID, "caption").text.strip()
        assert browser.find_element(By.ID, "reference").text.endswith(bundled_examples()[1].references[0])
        assert len(browser.find_elements(By.CSS_SELECTOR, "#alternatives li")) == BEAM
        thumbnails = browser.find_elements(By.CSS_SELECTOR, "#attention img.attention")
        assert thumbnails and all(browser.execute_script("return arguments[0].naturalWidth", i) for i in thumbnails)
        assert not browser.find_element(By.ID, "scale").is_displayed()  # the image itself, first

        word = browser.find_elements(By.CSS_SELECTOR, "#words button.word")[1]
        word.click()  # its map, full size, over the image
        view = browser.find_element(By.ID, "view")
        assert view.get_attribute("src") == thumbnails[1].get_attribute("src")
        assert browser.execute_script("return arguments[0].naturalWidth", view) == view.size["width"] > 256
        assert word.text in browser.find_element(By.ID, "view-label").text
        assert word.get_attribute("aria-pressed") == "true"
        assert browser.find_element(By.ID, "scale").is_displayed()
        assert browser.find_element(By.ID, "top-tick").text.endswith("%")

        text_file = tmp_path / "notes.txt"
        text_file.write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(text_file))
        wait.until(EC.visibility_of_element_located((By.ID, "error")))
        assert "notes.txt: not an image file" in browser.find_element(By.ID, "error").text

        browser.find_element(By.ID, "file").send_keys(str(write_image(tmp_path / "photo.png")))
        wait.until(EC.visibility_of_element_located((By.ID, "result")))
        assert not browser.find_element(By.ID, "reference").is_displayed()

        big = write_image(tmp_path / "big.png", size=(400, 400))
        browser.find_element(By.ID, "file").send_keys(str(big))
        wait.until(EC.text_to_be_present_in_element((By.ID, "error"), "too large"))
        assert "big.png" in browser.find_element(By.ID, "error").text
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
        assert not problems  # no script error, no Content-Security-Policy violation
    finally:
        browser.quit()
