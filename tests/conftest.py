"""Shared fixtures: closed-form signals, built when a test asks for them (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SR = 22050
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOREG_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session", autouse=True)
def _compiled_once():
    """The install's compiled-code cache filled (or repaired) by one process before any test
    or the processes tests start can race to write it."""
    from audioreg.features.numba_cache import ensure_compiled

    ensure_compiled()


SMOKE_RUN_ID = "smoke"


class Chain:
    """The notebook chain on ``params/smoke.yaml``, run by ``audioreg run`` into its own data root."""

    def __init__(self, work: Path, result=None, proc=None, log: Path | None = None):
        self.work, self.result, self.proc, self.log = work, result, proc, log

    @property
    def run_dir(self) -> Path:
        return self.work / "runs" / SMOKE_RUN_ID

    def wait(self, timeout: float = 900.0) -> "Chain":
        """For a chain started in the background: wait, and fail with its log if it failed."""
        import signal
        import subprocess

        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            assert self.proc.returncode == 0, self.log.read_text(errors="replace")[-4000:]
        return self


@pytest.fixture(scope="session")
def smoke_twin(tmp_path_factory) -> Chain:
    """A second smoke chain, started at once in the background by the command a user types,
    in another interpreter (another ``PYTHONHASHSEED``) and another data root: the
    determinism tests compare it with :func:`smoke_run`. Call ``.wait()`` before reading it."""
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("smoke_twin").resolve()
    log = work.with_suffix(".log")
    env = {**os.environ, "PYTHONHASHSEED": "2", "MPLBACKEND": "Agg"}
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the run
        proc = subprocess.Popen([sys.executable, "-m", "audioreg", "run", "-f", "params/smoke.yaml", "-p", "root", str(work),
                                 "--run-id", SMOKE_RUN_ID], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # a process group: kernels and workers included
    chain = Chain(work, proc=proc, log=log)
    yield chain
    if proc.poll() is None:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Chain:
    """The notebook chain on ``params/smoke.yaml`` (40 generated tracks of 5 s, tiny models),
    run once per session through :func:`audioreg.runner.run`; tests that need a finished
    chain, its caches or its reports share it."""
    from audioreg import runner

    work = tmp_path_factory.mktemp("smoke").resolve()
    result = runner.run(["params/smoke.yaml"], {"root": str(work)}, run_id=SMOKE_RUN_ID, root=REPO)
    return Chain(work, result=result)


#: Where tests keep what a person may want to look at afterwards (screenshots); git-ignored.
ARTIFACTS = Path(os.environ.get("AUDIOREG_TEST_ARTIFACTS", REPO / "test-artifacts")).resolve()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium driven by Selenium through chromedriver (Debian's ``chromium`` and
    ``chromium-driver``, which ``.ci/run`` installs); skips, saying what is missing, where
    they are not installed."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


_PAGE_FACTS = """
const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
return {
  title: document.title,
  images: [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 80), complete: i.complete,
                                          natural: i.naturalWidth, box: box(i)})),
  svgs: [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg'))
           .map(s => ({id: s.id || (s.closest('[id]') || {}).id || '', box: box(s)})),
  refs: [...document.querySelectorAll('[href],[src]')].map(e => e.getAttribute('href') ?? e.getAttribute('src')),
  anchors: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
             .filter(id => id && !document.getElementById(id)),
};
"""


def render_in_browser(driver, page: Path, screenshot: Path) -> tuple[dict, list[str]]:
    """Open ``page`` in the browser, keep a full-page screenshot at ``screenshot``, and return
    what it shows (title, images, figures, references) and its problems: an image that did not
    load or has no size, a figure (SVG) with no size, a reference to a file that does not exist
    or to anything off this machine, an in-page link to no element, an error in the console."""
    import base64
    from urllib.parse import unquote, urlparse

    driver.get(page.resolve().as_uri())
    facts = driver.execute_script(_PAGE_FACTS)
    problems = []
    for img in facts["images"]:
        if not img["complete"] or img["natural"] == 0 or min(img["box"]) <= 0:
            problems.append(f"image not shown: {img}")
    for svg in facts["svgs"]:
        if min(svg["box"]) <= 0:
            problems.append(f"figure with no size: {svg}")
    for ref in facts["refs"]:
        url = urlparse(ref)
        if url.scheme in ("http", "https") or ref.startswith("//"):
            problems.append(f"reference off this machine: {ref}")
        elif url.scheme in ("", "file") and url.path:
            target = Path(unquote(url.path)) if url.scheme == "file" else page.parent / unquote(url.path)
            if not target.exists():
                problems.append(f"broken reference: {ref}")
    problems += [f"in-page link to no element: #{a}" for a in facts["anchors"]]
    problems += [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return facts, problems


@pytest.fixture(autouse=True)
def _agg_backend(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: a user's clone has no ../shared beside it."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real-audio tests need ../shared/data beside the repo (looked in {data}); absent in a user's clone")
    return data


def tone(freq: float = 440.0, seconds: float = 2.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clicks(bpm: float = 120.0, seconds: float = 8.0, sr: int = SR) -> np.ndarray:
    y = np.zeros(int(seconds * sr), np.float32)
    period = 60.0 / bpm
    click = (np.hanning(64) * np.sin(2 * np.pi * 3000 * np.arange(64) / sr)).astype(np.float32)
    for t0 in np.arange(0, seconds - 0.01, period):
        i = int(t0 * sr)
        y[i : i + 64] += click[: len(y) - i]
    return y


def triad(root_midi: int = 60, seconds: float = 2.0, sr: int = SR, minor: bool = False) -> np.ndarray:
    third = 3 if minor else 4
    freqs = [440.0 * 2 ** ((m - 69) / 12) for m in (root_midi, root_midi + third, root_midi + 7)]
    return sum(tone(f, seconds, sr, amp=0.2) for f in freqs).astype(np.float32)


def random_labels(n: int, *, seed: int) -> np.ndarray:
    """Valid labels for all 11 targets, in TARGETS order: [n, 11]."""
    from audioreg.targets import TARGETS

    rng = np.random.default_rng(seed)
    columns = []
    for target in TARGETS:
        if target == "tempo":
            columns.append(rng.uniform(60.0, 180.0, n))
        elif target == "loudness":
            columns.append(rng.uniform(-30.0, -3.0, n))
        elif target == "time_signature":
            columns.append(rng.integers(3, 8, n).astype(float))
        elif target == "key":
            columns.append(rng.integers(0, 12, n).astype(float))
        else:
            columns.append(rng.uniform(0.0, 1.0, n))
    return np.column_stack(columns)


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot when cores are shared."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def signals():
    """Named closed-form test signals at 22,050 Hz."""
    return {
        "tone440": tone(440.0),
        "clicks120": clicks(120.0),
        "c_major": triad(60),
        "silence": np.zeros(SR * 2, np.float32),
    }


def train_gru_with(train_x, train_y, val_x, val_y, *, checkpoint_dir, params=None, device="cpu", resume=True,
                   **settings):
    """:func:`audioreg.models.train.train_gru` with the configs that :class:`GRURegressor` settings make."""
    from audioreg.models import GRURegressor, train

    est = GRURegressor(**settings)
    net, config = est.configs(n_features=int(train_x[0].shape[1]))
    return train.train_gru(train_x, train_y, val_x, val_y, net=net, config=config, checkpoint_dir=checkpoint_dir,
                           coding=est.coding(), params=params, device=device, resume=resume)
