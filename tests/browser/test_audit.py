"""The audit page in Chromium: what a user did on a VM page shows up there, newest
first, for a token with ``audit``; a token without it gets no link and is told why."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ALL, UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

AUDITOR = (*ALL, "audit")


def test_commands_and_a_console_session_show_on_the_audit_page(ui: UI) -> None:
    # One user of its own, so the filter below finds this test's events only.
    ui.open_vm("aud-1", AUDITOR, sub="audit-browser")
    ui.page.get_by_test_id("console-viewers").wait_for()  # the console is open
    ui.page.get_by_test_id("action-pause").click()
    ui.page.locator("[data-testid=vm-status][data-state=paused]").wait_for()
    ui.page.get_by_test_id("action-resume").click()
    ui.page.locator("[data-testid=vm-status][data-state=running]").wait_for()

    ui.page.get_by_test_id("nav-audit").click()
    ui.page.get_by_test_id("audit-filter-user").fill("audit-browser")
    ui.page.get_by_test_id("audit-filter-vm").fill("aud-1")
    ui.page.get_by_test_id("audit-apply").click()
    ui.page.locator("[data-testid=audit-row][data-kind=command]").nth(1).wait_for()
    rows = ui.page.get_by_test_id("audit-row")
    seen = [
        (
            rows.nth(i).get_attribute("data-kind"),
            rows.nth(i).get_by_test_id("audit-what").inner_text(),
            rows.nth(i).get_by_test_id("audit-user").inner_text(),
            rows.nth(i).get_by_test_id("audit-cell-vm").inner_text(),
            rows.nth(i).locator("td").first.inner_text(),
        )
        for i in range(rows.count())
    ]
    assert {(user, vm) for _, _, user, vm, _ in seen} == {("audit-browser", "aud-1")}
    commands = [what for kind, what, *_ in seen if kind == "command"]
    # Newest first: the resume came after the pause.
    assert [c.split(" in ")[0] for c in commands] == ["resume: success", "pause: success"], seen
    assert any(kind == "console_session" and what.startswith("interactive console opened") for kind, what, *_ in seen)
    times = [time for *_, time in seen]
    assert times == sorted(times, reverse=True)

    # Refresh asks again: the console closed when the VM page went away, and that is audited.
    ui.page.get_by_test_id("audit-refresh").click()
    ui.page.locator("[data-testid=audit-row][data-kind=console_session]", has_text="console closed").first.wait_for()


def test_a_token_without_audit_has_no_link_and_the_page_says_so(ui: UI) -> None:
    ui.open(permissions=ALL)
    ui.page.get_by_test_id("vm-row").first.wait_for()
    assert ui.page.get_by_test_id("nav-audit").count() == 0
    ui.open("#/audit", ALL)
    assert "lacks the audit permission" in ui.page.get_by_test_id("audit-forbidden").inner_text()
    assert ui.page.get_by_test_id("audit-table").count() == 0


def test_an_audit_only_token_lands_on_a_list_it_may_not_read_and_finds_the_audit_page(ui: UI) -> None:
    ui.open(permissions=("audit",), sub="audit-only")
    note = ui.page.get_by_test_id("list-forbidden")
    assert "lacks the read permission" in note.inner_text()
    note.get_by_role("link", name="audit trail").click()
    ui.page.get_by_test_id("audit-count").wait_for()
    # The token is kept: a refused list did not send the user back to the token form.
    assert ui.page.get_by_test_id("token-input").count() == 0
