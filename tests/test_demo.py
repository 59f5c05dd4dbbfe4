"""The captioning demo: its JSON endpoint, and end to end in headless Chromium (upload an image, find
the caption and the attention heatmaps on the page; a non-image and an oversized file get a message)."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request

import pytest
from captioning_fixtures import save_tiny_checkpoint, write_image

from multimodal_s2s.apps.demo import CaptionDemo, make_server
from multimodal_s2s.pipelines import Captioner

BEAM = 2
MAX_UPLOAD_BYTES = 50_000
PAGE_TIMEOUT_S = 30
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_PATHS = ("/usr/bin/chromedriver",)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A demo server on a free localhost port, in a background thread; yields its base URL."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_tiny_checkpoint(path)
    captioner = Captioner.from_checkpoint(path, device="cpu")
    demo = CaptionDemo(captioner, {"beam_size": BEAM, "n_best": BEAM}, MAX_UPLOAD_BYTES)
    httpd = make_server(demo, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _post(url: str, data: bytes, name: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}api/caption?name={name}", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=PAGE_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_endpoint_answers_caption_alternatives_and_one_heatmap_per_word(server, tmp_path):
    status, answer = _post(server, write_image(tmp_path / "x.png").read_bytes(), "x.png")
    assert status == 200
    assert answer["caption"] and len(answer["alternatives"]) == BEAM
    assert answer["alternatives"][0]["caption"] == answer["caption"]
    assert [w["word"] for w in answer["words"] if not w["word"].startswith("<")] == answer["caption"].split()
    assert all(word["heatmap"].startswith("data:image/png;base64,") for word in answer["words"])
    assert answer["image"].startswith("data:image/png;base64,")


def test_endpoint_rejects_non_images_and_oversized_uploads(server):
    status, answer = _post(server, b"just some text", "notes.txt")
    assert status == 400 and answer["error"].startswith("notes.txt: not an image file")
    status, answer = _post(server, b"\0" * (MAX_UPLOAD_BYTES + 1), "huge.png")
    assert status == 413 and "huge.png: the file is too large" in answer["error"]
    status, answer = _post(server, b"", "empty.png")
    assert status == 400 and answer["error"] == "empty.png: the file is empty"


def _browser():
    """Headless Chromium through Selenium with Debian's chromium and chromedriver, or skip."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary = next((p for p in CHROMIUM_PATHS if shutil.which(p)), None)
    driver_path = next((p for p in DRIVER_PATHS if shutil.which(p)), None)
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


def test_page_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server)
        wait = WebDriverWait(browser, PAGE_TIMEOUT_S)
        browser.find_element(By.ID, "file").send_keys(str(write_image(tmp_path / "photo.png")))
        wait.until(EC.visibility_of_element_located((By.ID, "result")))
        assert browser.find_element(By.ID, "caption").text.strip()
        heatmaps = browser.find_elements(By.CSS_SELECTOR, "#attention img.attention")
        assert heatmaps and all(img.get_attribute("src").startswith("data:image/png") for img in heatmaps)
        assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in heatmaps)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#alternatives li")) == BEAM

        text_file = tmp_path / "notes.txt"
        text_file.write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(text_file))
        wait.until(EC.visibility_of_element_located((By.ID, "error")))
        assert "notes.txt: not an image file" in browser.find_element(By.ID, "error").text

        big = write_image(tmp_path / "big.png", size=(400, 400))
        browser.find_element(By.ID, "file").send_keys(str(big))
        wait.until(EC.text_to_be_present_in_element((By.ID, "error"), "too large"))
        assert "big.png" in browser.find_element(By.ID, "error").text
    finally:
        browser.quit()
