"""The page of `microgpt serve` in headless Chromium, driven by Selenium through Debian's chromium-driver.

A learner's path, checked step by step: type a prefix and press Enter; the continuation appears
token by token, each with its probability (at temperature 0 the text is `microgpt sample`'s and
the probabilities are the API's logprobs); hovering a token draws the alternatives as bars, and
the temperature slider reshapes them; every layer's and head's attention is drawn; the training
curve takes in lines appended to metrics.jsonl without a reload; a chat model answers and /reset
clears it. Throughout, the browser logs nothing (a CSP violation, a failed request or a script
error would each be a console message; a control shows such a message is caught), and a
screenshot is not blank. Without Chromium, chromedriver or selenium the test is skipped, the reason shown.
"""

import io
import json
import math
import os
import re
import shutil
import urllib.request
import warnings

import pytest
from helpers import run_cli
from serving import LiveServer

pytest.importorskip("matplotlib")


def skip(reason):
    warnings.warn(reason, stacklevel=2)  # shown in pytest's summary even with -q
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip("selenium not installed (pip install selenium): the serve page not opened in a browser")
    browser = os.environ.get("MICROGPT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = os.environ.get("MICROGPT_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not chromedriver:
        skip("headless Chromium or chromedriver not found (apt-get install chromium chromium-driver): "
             "the serve page not opened in a browser")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def server(serve_runs):  # (not conftest's: the base and chat runs only, and their paths)
    s = LiveServer([serve_runs["base"], serve_runs["chat"]])
    s.paths = serve_runs
    yield s
    s.close()


def until(driver, cond, what, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: cond(d), f"timed out: {what}")


def set_slider(driver, name, value):
    driver.execute_script(f"const s = document.getElementById('{name}'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input'));", str(value))


def canvas_ink(driver, selector):
    """The fraction of each matching canvas's pixels that are not white."""
    return driver.execute_script("""return Array.from(document.querySelectorAll(arguments[0])).map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) n++;
        return n / (d.length / 4); });""", selector)


def bar_widths(driver):
    return driver.execute_script("return Array.from(document.querySelectorAll('#bars .fill')).map((f) => "
                                 "parseFloat(f.style.width));")


def test_the_page_shows_tokens_alternatives_attention_and_training(driver, server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    with urllib.request.urlopen(server.url + "/") as r:
        csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe" not in csp, csp
    driver.get(server.url + "/")
    until(driver, lambda d: "step 30" in d.find_element(By.ID, "info").text, "the model's info")
    until(driver, lambda d: d.find_element(By.ID, "chart").get_attribute("data-points") not in (None, "0"), "curve")
    set_slider(driver, "temp", 0)
    prefix = driver.find_element(By.ID, "prefix")
    prefix.send_keys("em", Keys.ENTER)
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#out .tok") and d.find_element(By.ID, "go").is_enabled(),
          "the continuation")
    # the text and probabilities are the API's: microgpt sample's text, the model's logprobs
    api = server.client().completions.create(model="base", prompt="em", temperature=0, logprobs=1, max_tokens=64)
    printed = run_cli("sample", "--out", server.paths["base"], "--temperature", "0", "--num", "1", "--prompt", "em",
                      check=True).stdout
    assert re.match(r"sample  1: (.*?)  \(", printed).group(1) == "em" + api.choices[0].text
    assert driver.find_element(By.ID, "out").text == "em" + api.choices[0].text
    spans = driver.find_elements(By.CSS_SELECTOR, "#out .tok")
    assert [s.text for s in spans] == api.choices[0].logprobs.tokens
    assert [float(s.get_attribute("data-p")) for s in spans] == \
        [pytest.approx(math.exp(lp), abs=1e-4) for lp in api.choices[0].logprobs.token_logprobs]
    # alternatives: bars for the hovered token; at temperature 0 all on the likeliest, flatter when hotter
    ActionChains(driver).move_to_element(spans[0]).perform()
    until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bars .bar")) >= 2, "the bars")
    assert bar_widths(driver)[0] == 100 and set(bar_widths(driver)[1:]) == {0}
    assert driver.find_element(By.CSS_SELECTOR, "#bars .bar.chosen")  # greedy: the chosen one is the likeliest
    set_slider(driver, "temp", 2)
    hot = bar_widths(driver)
    assert 0 < hot[-1] <= hot[0] < 100 and abs(sum(hot) - 100) < 0.5
    # attention: every head drawn, in colour
    until(driver, lambda d: d.execute_script("return document.body.dataset.attention") == "2", "attention")
    ink = canvas_ink(driver, "#heads canvas")
    assert len(ink) == 2 and min(ink) > 0.2, ink
    # training: lines appended to metrics.jsonl appear without reloading the page
    before = int(driver.find_element(By.ID, "chart").get_attribute("data-points"))
    with open(os.path.join(server.paths["base"], "metrics.jsonl"), "a") as f:
        for step in (31, 32, 33):
            f.write(json.dumps({"step": step, "train_loss": 1.5 + step / 100}) + "\n")
    until(driver, lambda d: int(d.find_element(By.ID, "chart").get_attribute("data-points")) == before + 3,
          "the new metrics", timeout=15)
    assert "step 33" in driver.find_element(By.ID, "trainnote").text
    assert min(canvas_ink(driver, "#chart")) > 0.01
    # nothing logged; a screenshot that is not blank
    assert driver.get_log("browser") == []
    import matplotlib.image
    pixels = matplotlib.image.imread(io.BytesIO(driver.get_screenshot_as_png()), format="png")[..., :3]
    not_white = (pixels < 0.97).any(axis=-1).mean()
    coloured = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.25).mean()
    assert not_white > 0.1 and coloured > 0.01, (not_white, coloured)
    # the console check can fail: something the CSP blocks is logged
    driver.execute_script("const i = document.createElement('img'); i.src = 'https://example.com/x.png';"
                          "document.body.appendChild(i);")
    until(driver, lambda d: any("example.com" in e["message"] for e in d.get_log("browser")), "the CSP's report", 10)


def test_the_page_chats_with_a_chat_model(driver, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    driver.get(server.url + "/")
    until(driver, lambda d: "step 30" in d.find_element(By.ID, "info").text, "the model's info")
    Select(driver.find_element(By.ID, "model")).select_by_visible_text("chat")
    until(driver, lambda d: d.find_element(By.ID, "say").is_displayed(), "the chat box")
    set_slider(driver, "temp", 0)
    driver.find_element(By.ID, "say").send_keys("12+34", Keys.ENTER)
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant .tok") and
          d.find_element(By.ID, "go").is_enabled(), "the reply")
    reply = driver.find_element(By.CSS_SELECTOR, ".msg.assistant").text
    printed = run_cli("sample", "--out", server.paths["chat"], "--temperature", "0", "--num", "1", "--prompt", "12+34",
                      check=True).stdout
    assert printed.startswith(f"sample  1: 12+34 -> {reply}")
    until(driver, lambda d: d.execute_script("return document.body.dataset.attention") == "2", "attention")
    driver.find_element(By.ID, "say").send_keys("/reset", Keys.ENTER)
    until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, ".msg"), "an empty conversation")
    assert driver.get_log("browser") == []


def test_the_page_asks_for_the_api_key(driver, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from microgpt.serve.app import Settings
    s = LiveServer([server.paths["base"]], Settings(api_key="k3y"))
    try:
        driver.get(s.url + "/")
        until(driver, lambda d: d.find_element(By.ID, "key").is_displayed(), "the key's field")
        driver.find_element(By.ID, "key").send_keys("k3y", Keys.ENTER)
        until(driver, lambda d: "step 30" in d.find_element(By.ID, "info").text, "the model's info")
        set_slider(driver, "temp", 0)  # (greedy: "em" goes on; a drawn first token may be the end, and show nothing)
        driver.find_element(By.ID, "prefix").send_keys("em", Keys.ENTER)
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#out .tok"), "the continuation")
        logged = [e["message"] for e in driver.get_log("browser")]
        assert logged and all("401 (Unauthorized)" in m for m in logged), logged  # only the requests before the key
    finally:
        s.close()
