"""The admin web page in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium): sign in, find a user's devices, reset one
(the phone then recovers) and ask for a wipe (the phone then gets it)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import deliver, message, new_user, post
from tests.gateway.model_phone import ModelPhone
from tests.gateway.test_admin import upstream_subjects

PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_gateway(gateway: RunningGateway) -> Iterator[RunningGateway]:
    with running_gateway(gateway.upstream, gateway.database_url, admin_password=PASSWORD, poll_seconds=0.5) as gw:
        yield gw


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.fail("chromium and chromium-driver are not installed (scripts/test.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    # As root in a sandbox-less container, on a machine without network: no
    # sandbox, and none of Chromium's background connections.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or ""))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def replaced(element: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """The page holding ``element`` was replaced. Chromium reports a detached node as
    stale, or, in a race, with "does not belong to the document": both mean gone."""
    def check(_: webdriver.Chrome) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReferenceException is one
            return True
        return False
    return check


def sign_in(driver: webdriver.Chrome, gw: RunningGateway, password: str) -> None:
    driver.get(gw.url + "/admin")
    assert driver.current_url.endswith("/admin/login")
    field = driver.find_element(By.NAME, "password")
    field.send_keys(password)
    driver.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(driver, 10).until(replaced(field))


def click_and_confirm(driver: webdriver.Chrome, device: str, label: str) -> str:
    row = driver.find_element(By.XPATH, f"//tr[td[text()='{device}']]")
    row.find_element(By.XPATH, f".//button[text()='{label}']").click()
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    driver.switch_to.alert.accept()
    WebDriverWait(driver, 10).until(replaced(row))  # the answer page replaced it
    return driver.find_element(By.CLASS_NAME, "message").text


def test_sign_in_find_devices_reset_and_wipe(admin_gateway: RunningGateway, browser: webdriver.Chrome) -> None:
    gw = admin_gateway
    user = new_user(gw)
    deliver(gw, user, [message(f"page {n}") for n in range(5)])
    phone = ModelPhone(gw, user)
    phone.folder_sync()
    inbox = phone.folder("Inbox")
    phone.sync(inbox)

    sign_in(browser, gw, "wrong")
    assert "Wrong password." in browser.page_source
    sign_in(browser, gw, PASSWORD)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Devices"
    search = browser.find_element(By.NAME, "user")
    search.send_keys(user)
    search.submit()
    WebDriverWait(browser, 10).until(replaced(search))
    cells = [td.text for td in browser.find_elements(By.XPATH, f"//tr[td[text()='{phone.device}']]/td")]
    assert cells[:6] == [user, phone.device, "TestPhone", "14.1", cells[4], "provisioned"] and cells[6] == "-"

    assert click_and_confirm(browser, phone.device, "Reset sync state") == f"Reset sync state: done for {phone.device}."
    phone.folder_sync()
    phone.sync(inbox)
    assert {"FolderSync 9", "Sync 3"} <= set(phone.statuses)
    assert phone.subjects(inbox) == upstream_subjects(gw, user, "Inbox")

    click_and_confirm(browser, phone.device, "Wipe the device")
    assert browser.find_element(By.XPATH, f"//tr[td[text()='{phone.device}']]/td[7]").text == "device wipe requested"
    answer = post(gw, "FolderSync", etree.Element("{FolderHierarchy:}FolderSync"), device_id=phone.device,
                  user=user, policy_key=phone.policy_key)
    assert ModelPhone._status(answer) == "140"
    # Dismissing the confirmation changes nothing.
    browser.find_element(By.XPATH, f"//tr[td[text()='{phone.device}']]//button[text()='Cancel the wipe']").click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    browser.switch_to.alert.dismiss()
    assert browser.find_element(By.XPATH, f"//tr[td[text()='{phone.device}']]/td[7]").text == "device wipe requested"

    # Every action of the page is in the audit log, as web:admin.
    audit = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in browser.find_elements(
        By.XPATH, "//h2[text()='What admins did']/following-sibling::table[1]//tr[td]")]
    assert {a[2] for a in audit if a[1] == "web:admin" and phone.device in a[3]} >= {"reset", "wipe"}
    # Blocking: the device is refused (Status 129) until it is let in again.
    click_and_confirm(browser, phone.device, "Cancel the wipe")
    assert click_and_confirm(browser, phone.device, "Block for a day") == f"Block for a day: done for {phone.device}."
    blocked = post(gw, "FolderSync", etree.Element("{FolderHierarchy:}FolderSync"), device_id=phone.device,
                   user=user, policy_key=phone.policy_key)
    assert ModelPhone._status(blocked) == "129"
    unblock = browser.find_element(By.XPATH, "//h2[text()='Blocked devices']/following-sibling::table[1]"
                                             f"//tr[td[text()='{phone.device}']]//button[text()='Let in again']")
    unblock.click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 10).until(replaced(unblock))
    synced_before = phone.statuses["FolderSync 1"]
    phone.folder_sync()
    assert phone.statuses["FolderSync 1"] == synced_before + 1


def test_changes_need_a_session_and_its_csrf_token(admin_gateway: RunningGateway, gateway: RunningGateway) -> None:
    gw = admin_gateway
    assert httpx.get(gw.url + "/admin").headers["location"] == "/admin/login"
    refused = httpx.post(gw.url + "/admin/action", data={"action": "remove", "user": "alice@example.com",
                                                          "device": "X", "csrf": "guess"})
    assert refused.status_code == 403
    with httpx.Client(base_url=gw.url) as client:
        signed_in = client.post("/admin/login", data={"password": PASSWORD})
        assert signed_in.status_code == 303 and "httponly" in signed_in.headers["set-cookie"].lower()
        assert client.post("/admin/action", data={"action": "remove", "user": "alice@example.com",
                                                  "device": "X", "csrf": "guess"}).status_code == 403
    # Without EAS_ADMIN_PASSWORD there is no page at all.
    assert httpx.get(gateway.url + "/admin/login").status_code == 404


def test_sign_in_failures_slow_guessing_down_but_never_lock_the_right_password_out(
        admin_gateway: RunningGateway) -> None:
    with httpx.Client(base_url=admin_gateway.url, timeout=60) as client:
        codes = [client.post("/admin/login", data={"password": f"guess {n}"}).status_code for n in range(5)]
        assert codes == [401] * 5
        started = time.monotonic()
        sixth = client.post("/admin/login", data={"password": "guess 6"})
        assert sixth.status_code == 429 and int(sixth.headers["retry-after"]) >= 2
        assert time.monotonic() - started >= 1  # it waited before it even looked
        started = time.monotonic()
        # A colleague behind the same address, with the right password: it waits, then gets in.
        assert client.post("/admin/login", data={"password": PASSWORD}).status_code == 303
        assert time.monotonic() - started >= 2


def test_signing_out_ends_the_session_on_every_node(admin_gateway: RunningGateway) -> None:
    with httpx.Client(base_url=admin_gateway.url) as client:
        client.post("/admin/login", data={"password": PASSWORD})
        cookie = client.cookies.get("eas_admin", path="/admin")
        page = client.get("/admin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert client.post("/admin/logout", data={}).status_code == 403  # no CSRF token: no sign-out
        assert client.post("/admin/logout", data={"csrf": csrf}).status_code == 303
    # The cookie, copied before the sign-out, opens nothing any more (on this or another node).
    copied = httpx.get(admin_gateway.url + "/admin", cookies={"eas_admin": cookie or ""})
    assert copied.status_code == 303 and copied.headers["location"] == "/admin/login"


def test_the_cookie_is_secure_when_the_request_came_over_tls(gateway: RunningGateway) -> None:
    with running_gateway(gateway.upstream, gateway.database_url, admin_password=PASSWORD,
                         trusted_proxies="127.0.0.1") as gw:
        via_tls = httpx.post(gw.url + "/admin/login", data={"password": PASSWORD},
                             headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"})
        plain = httpx.post(gw.url + "/admin/login", data={"password": PASSWORD})
    assert "secure" in via_tls.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()
