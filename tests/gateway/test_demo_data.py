"""scripts/demo-data.py (what scripts/serve.sh gives the demo users): a phone of a seeded
user sees every class working (mail, contacts, a recurring, an all-day and an invited
event, tasks, notes), and seeding twice adds nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, RunningGateway
from tests.gateway.helpers import Phone, new_user, password

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, C = "{AirSync:}", "{Calendar:}"


def test_a_demo_users_phone_shows_every_class(gateway: RunningGateway) -> None:
    users = [new_user(gateway), new_user(gateway)]
    marker = gateway.cyrus_dir / f"demo-{users[0]}"
    command = [sys.executable, str(ROOT / "scripts" / "demo-data.py"), "--upstream", gateway.upstream,
               "--lmtp", str(gateway.cyrus_dir / "socket" / "lmtp"), "--marker", str(marker),
               *[f"--user={u}:{password(u)}" for u in users]]
    for _ in range(2):  # the second run finds everything there
        subprocess.run(command, check=True, timeout=120)
    phone = Phone(gateway, users[0])
    counts = {t: len(phone.sync_all(phone.types[t])[1]) for t in ("2", "7", "8", "9", "10")}
    assert counts == {"2": 3, "7": 2, "8": 3, "9": 2, "10": 1}
    _, events = phone.sync_all(phone.types["8"])
    data = {e.findtext(f"{A}ApplicationData/{C}Subject"): e.find(A + "ApplicationData") for e in events}
    assert data["Team stand-up"].find(C + "Recurrence") is not None
    assert data["Company holiday"].findtext(C + "AllDayEvent") == "1"
    invited = next(v for k, v in data.items() if k.startswith("Design review"))
    assert invited.findtext(C + "MeetingStatus") == "3"  # an invitation: another user organizes it


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_every_class_at_every_version_answers_within_its_version(gateway: RunningGateway, version: str) -> None:
    """A seeded user's every folder synced whole, with the richest options of each version
    (bodies, at 14.0 on previews, MIME): the version check of every response
    (tests/conftest.py) finds nothing the version lacks, and every class still shows."""
    from tests.gateway.helpers import options

    user = new_user(gateway)
    marker = gateway.cyrus_dir / f"demo-{user}"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo-data.py"), "--upstream", gateway.upstream,
                    "--lmtp", str(gateway.cyrus_dir / "socket" / "lmtp"), "--marker", str(marker),
                    f"--user={user}:{password(user)}"], check=True, timeout=120)
    phone = Phone(gateway, user, version=version)
    expected = {"2": 3, "7": 2, "8": 3, "9": 2} | ({"10": 1} if float(version) >= 14.0 else {})
    counts = {}
    for folder_type in expected:
        body = [(2, 20_000, False)] if folder_type == "2" else [(1, 5_000, False)]
        preview = 100 if float(version) >= 14.0 and folder_type == "2" else None
        rich = options(body=body, preview=preview, mime_support=1 if folder_type == "2" else None)
        counts[folder_type] = len(phone.sync_all(phone.types[folder_type], options=rich)[1])
    assert counts == expected
    assert ("10" in phone.types) == (float(version) >= 14.0)
