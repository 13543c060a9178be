"""The console in a real browser: Debian's chromium driven by Playwright.

console_browser.py BASE TOKEN_FILE NAMESPACE KUBECTL KUBECONFIG SHOTS

Signs in with the token, walks every page (saving a screenshot of each into
SHOTS), checks pages work without JavaScript, that nothing is requested
from another origin, that no script runs from hostile text and the CSP
reports nothing, and that an alias moved and a TrainingJob created with
kubectl show on open pages without a reload, and that a run's page draws
all 10,000 samples its trainer printed (timing it). Prints what it measured as
JSON; exits non-zero with the reason on the first failure.
"""

import json
import subprocess
import sys
import time

from playwright.sync_api import sync_playwright

BASE, TOKEN_FILE, NS, KUBECTL, KUBECONFIG, SHOTS = sys.argv[1:7]
with open(TOKEN_FILE, encoding="utf-8") as f:
    TOKEN = f.read().strip()
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


def kubectl(*args, stdin=None):
    done = subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, "-n", NS, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def sign_in(page):
    page.goto(f"{BASE}/")
    if not page.url.endswith("/login"):
        fail(f"without a session / went to {page.url}")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{BASE}/")


def main():
    measured = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])

        # Without JavaScript: sign in and read a model's page.
        plain = browser.new_context(java_script_enabled=False)
        page = plain.new_page()
        sign_in(page)
        page.goto(f"{BASE}/ns/{NS}/models/card-fraud")
        if "v1" not in page.inner_text("#versions"):
            fail("without JavaScript the model page lacks its versions")
        plain.close()

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        foreign, dialogs, problems = [], [], []
        page.on("request", lambda r: r.url.startswith(BASE) or r.url.startswith("data:") or foreign.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{BASE}/models")
        page.screenshot(path=f"{SHOTS}/login.png", full_page=True)
        sign_in(page)

        # A pin with a hostile reason, through the form.
        model = f"{BASE}/ns/{NS}/models/card-fraud"
        page.goto(model)
        page.wait_for_selector("body[data-live=on]", timeout=5000)
        page.fill("#alias", "staging")
        page.fill("#reason", XSS)
        with page.expect_navigation():
            page.click("#promote button[type=submit]")
        if page.url != model:
            fail(f"the pin went to {page.url}: {page.inner_text('main')[:500]}")
        # The operator records the move; the open page shows it live.
        try:
            page.wait_for_function(
                "x => document.querySelector('#history').innerText.includes(x)", arg=XSS, timeout=10000)
        except Exception:
            fail(f"the pin is not in the history: {page.url} {page.inner_text('main')[:3000]}")
        if "editor" not in page.inner_text("#history"):
            fail("the history does not name who moved the alias")

        # An alias moved with kubectl reaches the open page.
        page.wait_for_selector("body[data-live=on]", timeout=5000)
        started = time.monotonic()
        # As the chart's admission policy makes them, whoever changes the
        # spec stamps their own name as requester.
        admin = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        patch = {"metadata": {"annotations": {"aimass.io/requested-by": admin}},
                 "spec": {"aliases": {"browser-pin": 1}}}
        kubectl("patch", "model", "card-fraud", "--type=merge", "-p", json.dumps(patch))
        page.wait_for_selector('[data-alias="browser-pin"]', timeout=2000)
        measured["aliasBadgeSeconds"] = round(time.monotonic() - started, 3)
        page.wait_for_function(
            "x => document.querySelector('#history').innerText.includes(x)", arg="browser-pin", timeout=5000)
        row = page.inner_text("#history tbody tr:first-child")
        if admin not in row or "alert" in row:
            fail(f"the kubectl pin is not attributed to {admin} alone: {row}")

        # A TrainingJob created with kubectl appears on the open list.
        page.goto(f"{BASE}/trainingjobs")
        page.wait_for_selector("body[data-live=on]", timeout=5000)
        started = time.monotonic()
        kubectl("apply", "-f", "-", stdin=(
            "apiVersion: aimass.io/v1alpha1\nkind: TrainingJob\nmetadata: {name: browser-run}\n"
            "spec:\n  modelRef: {name: card-fraud}\n  image: aimass/fraud-trainer\n"
            "  dataset: {uri: 'file:///nowhere.csv'}\n"
            f"  hyperparameters: {{note: '{XSS}'}}\n"))
        page.wait_for_selector("#training-jobs >> text=browser-run", timeout=2000)
        measured["trainingRunSeconds"] = round(time.monotonic() - started, 3)

        # A run that printed 10,000 samples: its page draws every one from
        # the trainer's output, read with the user's token.
        kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "aimass.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "long-run"},
            "spec": {"modelRef": {"name": "card-fraud"}, "image": "busybox", "dataset": {"uri": "file:///nowhere.csv"},
                     "command": ["awk", 'BEGIN { for (i = 0; i < 10000; i++) printf "{\\"step\\": %d, \\"metrics\\": {\\"loss\\": %.6f}}\\n", i, 1 / (1 + i / 100) }']}}))
        long_run = f"{BASE}/ns/{NS}/trainingjobs/long-run"
        deadline = time.monotonic() + 90
        while True:
            page.goto(long_run)
            if page.get_attribute("#samples", "data-samples") == "10000":
                break
            if time.monotonic() > deadline:
                fail(f"the 10,000-sample run shows {page.inner_text('#curves')[:300]} {page.inner_text('#output')[:500]}")
            time.sleep(1)
        drawn = page.evaluate("document.querySelector('#curves polyline').getAttribute('points').trim().split(' ').length")
        if drawn != 10000:
            fail(f"the chart draws {drawn} of 10,000 points")
        started = time.monotonic()
        page.goto(long_run)
        page.wait_for_load_state("load")
        measured["chart10kLoadSeconds"] = round(time.monotonic() - started, 3)
        measured["chart10kNavigationMs"] = page.evaluate(
            "Math.round(performance.getEntriesByType('navigation')[0].loadEventEnd)")

        pages = {
            "overview": "/",
            "models": "/models",
            "model": f"/ns/{NS}/models/card-fraud",
            "version": f"/ns/{NS}/models/card-fraud/versions/1",
            "training-jobs": "/trainingjobs",
            "training-job": f"/ns/{NS}/trainingjobs/browser-run",
            "training-job-10k": f"/ns/{NS}/trainingjobs/long-run",
            "scoring-jobs": "/scoringjobs",
            "scoring-job": f"/ns/{NS}/scoringjobs/browser-scoring",
            "deployments": "/deployments",
            "deployment": f"/ns/{NS}/deployments/scoring",
            "yaml": f"/ns/{NS}/models/card-fraud/yaml",
            "decisions": "/decisions",
            "approvals": "/approvals",
        }
        for name, path in pages.items():
            started = time.monotonic()
            answer = page.goto(f"{BASE}{path}")
            page.wait_for_load_state("load")
            measured[f"{name}LoadSeconds"] = round(time.monotonic() - started, 3)
            if answer is None or answer.status != 200:
                fail(f"{path} answered {answer and answer.status}")
            page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)

        if dialogs:
            fail(f"hostile text ran as script: {dialogs}")
        if foreign:
            fail(f"requests left the console's origin: {foreign}")
        if problems:
            fail(f"the browser reported errors: {problems}")
        measured["pages"] = len(pages) + 1
        browser.close()
    print(json.dumps(measured))


main()
