"""The recordings page in a real browser: Debian's headless Chromium, driven through chromedriver
by Selenium, against `sshpod audit serve` on a directory of recordings that the test writes in
the recorder's layout (a hash-chained `events.jsonl` and an asciicast of the terminal).

It logs in with the token, finds the recording in the list, seeks by clicking events, plays
the terminal session and reads what the player drew; a screenshot is kept in `.work/artifacts/`
for people. No Docker engine is needed: nothing here starts a container.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import harness as h

pytestmark = pytest.mark.no_docker

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = h.REPO_ROOT / ".work" / "artifacts"
BROWSER_TIMEOUT = 30

START = datetime(2026, 12, 7, 4, 0, 0, tzinfo=timezone.utc)
FIRST_TEXT = "FIRST-LINE-alpha"
SECOND_TEXT = "SECOND-LINE-omega"
# What an attacker might call themselves on a honeypot: must show up as text, never as markup.
HOSTILE_USER = '<img src=x onerror="document.title=\'pwned\'">'


def player_assets() -> Path:
    """The player's directory: SSHPOD_PLAYER_ASSETS (scripts/test.sh sets it) or web/'s."""
    default = h.REPO_ROOT / "web" / "node_modules" / "asciinema-player" / "dist" / "bundle"
    return Path(os.environ.get("SSHPOD_PLAYER_ASSETS") or default)


def at(seconds: float) -> str:
    moment = START + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


def write_events(path: Path, connection: str, events: list[tuple[float, int | None, str, dict]]) -> None:
    """An event log as the recorder writes it: one JSON object per line, hash-chained."""
    link = "0" * 64
    lines = []
    user = None
    for seq, (seconds, channel, kind, fields) in enumerate(events):
        if kind == "login-accepted":
            user = fields["authenticated"]
        record = {"seq": seq, "at": at(seconds), "connection": connection, "remote": "192.0.2.7:5022",
                  "user": user, "channel": channel, "kind": kind, **fields}
        content = json.dumps(record, separators=(",", ":")).encode()
        link = hashlib.sha256(link.encode() + content).hexdigest()
        lines.append(content[:-1] + b',"chain":"' + link.encode() + b'"}\n')
    path.write_bytes(b"".join(lines))


def write_recordings(root: Path) -> tuple[str, str]:
    """A complete recording with a terminal session, and an older interrupted one without."""
    played = secrets.token_hex(16)
    directory = root / played
    directory.mkdir(parents=True)
    write_events(directory / "events.jsonl", played, [
        (0.0, None, "connected", {}),
        (0.1, None, "login-accepted", {"method": "publickey", "authenticated": "alice"}),
        (0.2, 0, "channel-opened", {"channelKind": "session"}),
        (0.3, 0, "pty", {"term": "xterm-256color", "cols": 80, "rows": 24}),
        (0.4, 0, "process-starting", {"command": "shell", "tty": True}),
        (2.0, 0, "signal", {"signal": "INT"}),
        (3.5, 0, "resize", {"cols": 100, "rows": 30}),
        (4.0, 0, "process-exited", {"exitStatus": 0}),
        (4.1, 0, "session-ended", {}),
        (4.2, None, "closed", {}),
        (4.3, None, "end", {"lines": 10, "files": 1}),
    ])
    # The terminal's time 0 is a second after the connection's: events are placed on the player
    # by the cast's own timestamp.
    header = {"version": 2, "width": 80, "height": 24, "timestamp": int(START.timestamp()) + 1,
              "env": {"TERM": "xterm-256color"}}
    cast = [json.dumps(header)]
    cast += [json.dumps(event) for event in [
        [0.5, "o", f"$ echo {FIRST_TEXT}\r\n{FIRST_TEXT}\r\n"],  # 1.5 s into the connection
        [2.0, "o", f"$ echo {SECOND_TEXT}\r\n{SECOND_TEXT}\r\n"],  # 3.0 s
        [2.9, "o", "$ exit\r\n"],  # 3.9 s
    ]]
    (directory / "channel-0.cast").write_text("\n".join(cast) + "\n")

    interrupted = secrets.token_hex(16)
    (root / interrupted).mkdir()
    write_events(root / interrupted / "events.jsonl", interrupted, [
        (-3600.0, None, "connected", {}),
        (-3599.0, None, "login-accepted", {"method": "password", "authenticated": HOSTILE_USER}),
    ])
    return played, interrupted


@pytest.fixture
def page(tmp_path: Path):
    """`sshpod audit serve` on the recordings, and a headless Chromium; yields both and the ids."""
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.is_file():
            pytest.fail(f"{tool} is missing: scripts/test.sh installs Debian's chromium and chromium-driver "
                        "(ensure_browser)", pytrace=False)
    assets = player_assets()
    if not (assets / "asciinema-player.min.js").is_file():
        pytest.fail(f"the player is not installed in {assets}: run ensure_player_assets (scripts/lib.sh)",
                    pytrace=False)
    root = tmp_path / "recordings"
    played, interrupted = write_recordings(root)
    token = f"browser-test-{secrets.token_hex(12)}"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    server = h.Gateway("audit-serve", tmp_path / "unused.yaml", args=[
        "audit", "serve", "--dir", str(root), "--listen", "127.0.0.1:0",
        "--token-file", str(token_file), "--assets", str(assets),
    ])
    server.wait_ready()

    driver = chromium()
    try:
        yield driver, f"http://{server.addr.split('//')[-1]}/", token, played, interrupted
    finally:
        driver.quit()
        status = server.stop()
        assert status == 0, f"sshpod audit serve exited with {status}:\n{server.log}"


def chromium() -> WebDriver:
    """Debian's Chromium, headless, keeping the page's console for the test to read."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def log_in(driver: WebDriver, url: str, token: str) -> None:
    driver.get(url)
    h.wait_until(lambda: visible(driver, "login"), BROWSER_TIMEOUT, "the login form")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    h.wait_until(lambda: visible(driver, "list"), BROWSER_TIMEOUT, "the list after logging in")


def visible(driver: WebDriver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def terminal_text(driver: WebDriver) -> str:
    return driver.execute_script(
        "const t = document.querySelector('#player .ap-term-text'); return t ? t.textContent : '';")


def current_event(driver: WebDriver) -> str | None:
    return driver.execute_script(
        "const c = document.querySelector('#events li.current'); return c ? c.dataset.kind : null;")


def event_item(driver: WebDriver, kind: str):
    return driver.find_element(By.CSS_SELECTOR, f"#events li[data-kind='{kind}']")


def test_the_page_lists_plays_and_seeks_a_recording(page) -> None:
    driver, url, token, played, interrupted = page
    wait = lambda predicate, what: h.wait_until(predicate, BROWSER_TIMEOUT, what)  # noqa: E731

    # A browser without the cookie is asked for the token; a wrong one is refused.
    driver.get(url)
    wait(lambda: visible(driver, "login"), "the login form")
    driver.find_element(By.ID, "token").send_keys("not-the-token-at-all")
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(lambda: visible(driver, "login-refused"), "the wrong token refused")
    assert not visible(driver, "list")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(lambda: visible(driver, "list"), "the list after logging in")

    # The list: newest first; what an attacker called themselves is text, not markup.
    rows = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr"), "the recordings")
    assert [row.get_attribute("data-id") for row in rows] == [played, interrupted]
    cells = [cell.text for cell in rows[0].find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["alice", "192.0.2.7:5022", "0m 04s"], cells
    assert cells[5:8] == ["1 session", "complete", played], cells
    hostile = [cell.text for cell in rows[1].find_elements(By.TAG_NAME, "td")]
    assert hostile[1] == HOSTILE_USER and hostile[6] == "interrupted", hostile
    assert driver.find_elements(By.CSS_SELECTOR, "#recordings img") == []
    assert driver.title == "sshpod recordings"

    # The recording: its events beside the player.
    rows[0].click()
    wait(lambda: visible(driver, "viewer"), "the viewer")
    items = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#events li.seekable"), "seekable events")
    assert [item.get_attribute("data-kind") for item in items] == [
        "connected", "login-accepted", "channel-opened", "pty", "process-starting", "signal", "resize",
        "process-exited", "session-ended", "closed", "end"]
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#player .ap-term-text"), "the player's terminal")

    # Clicking an event seeks to its time: 2 s in, the first command has run, the second not.
    event_item(driver, "signal").click()
    wait(lambda: FIRST_TEXT in terminal_text(driver), "the terminal at 2 s")
    assert SECOND_TEXT not in terminal_text(driver)
    wait(lambda: current_event(driver) == "signal", "the clicked event highlighted")

    # Playing from there draws the rest, and the highlight follows the player's time to the last
    # event within the terminal session (the cast ends at 3.9 s, the resize was at 3.5 s).
    driver.find_element(By.CSS_SELECTOR, "#player .ap-playback-button").click()
    wait(lambda: SECOND_TEXT in terminal_text(driver), "the second command played")
    wait(lambda: current_event(driver) == "resize", "the highlight following playback")

    # Seeking back, and a screenshot of what the player shows.
    event_item(driver, "process-starting").click()
    wait(lambda: SECOND_TEXT not in terminal_text(driver), "the terminal back before the second command")
    event_item(driver, "process-exited").click()
    wait(lambda: SECOND_TEXT in terminal_text(driver) and FIRST_TEXT in terminal_text(driver),
         "the terminal at 4 s")
    # Past the cast's end (3.9 s): the player shows its end, the clicked event stays highlighted.
    wait(lambda: current_event(driver) == "process-exited", "the clicked event highlighted")
    terminal = driver.find_element(By.CSS_SELECTOR, "#player .ap-term")
    assert terminal.is_displayed() and terminal.size["width"] > 300 and terminal.size["height"] > 100
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "web_player.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")

    # The page kept to its Content-Security-Policy: nothing was blocked, no script failed. (The
    # 401 answers are the ones this test asked for: before logging in, and the wrong token.)
    expected = ("/api/recordings - Failed to load resource: the server responded with a status of 401",
                "/login - Failed to load resource: the server responded with a status of 401")
    problems = [entry["message"] for entry in driver.get_log("browser")
                if (entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"])
                and not any(e in entry["message"] for e in expected)]
    assert problems == [], problems


def api_status(driver: WebDriver) -> int:
    """What the list answers the page's own fetch (with whatever cookie the browser holds)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/recordings').then((r) => done(r.status), () => done(-1));")


def test_logging_out_ends_the_session(page) -> None:
    driver, url, token, _, _ = page
    driver.get(url)
    h.wait_until(lambda: visible(driver, "login"), BROWSER_TIMEOUT, "the login form")
    assert api_status(driver) == 401
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    h.wait_until(lambda: visible(driver, "list"), BROWSER_TIMEOUT, "the list")
    assert api_status(driver) == 200
    # The cookie is HttpOnly: the page's scripts cannot read it.
    assert driver.execute_script("return document.cookie") == ""
    driver.find_element(By.ID, "logout").click()
    h.wait_until(lambda: visible(driver, "login"), BROWSER_TIMEOUT, "the login form after logging out")
    assert api_status(driver) == 401
    driver.refresh()
    h.wait_until(lambda: visible(driver, "login"), BROWSER_TIMEOUT, "a login asked for again")
    assert not visible(driver, "list")
