#!/usr/bin/env python3
"""Loads an `mlxc explain` page in headless Chromium and checks a frame.

  explain_check.py PAGE HASH SCREENSHOT ID=TEXT...

Opens PAGE at `#HASH` (the state the page shows: step=N cells revealed,
rate=K, t=T training steps), fails on any console message of level
warning or above or an uncaught exception, checks that the element with
each ID contains TEXT (as rendered into the DOM), and saves a screenshot of
the frame to SCREENSHOT (the test run keeps it). Exit 1 with a message on
failure.
"""
import html
import os
import re
import subprocess
import sys

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-background-networking",
            "--disable-extensions", "--disable-dev-shm-usage"]


def main(page, state, screenshot, *checks):
    url = "file://" + os.path.abspath(page) + "#" + state
    dom = subprocess.run(
        CHROMIUM + ["--enable-logging=stderr", "--v=0",
                    "--virtual-time-budget=3000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    if dom.returncode:
        print("chromium failed:", dom.stderr[-2000:])
        return 1
    failures = []
    for line in dom.stderr.splitlines():
        m = re.search(r":(INFO|WARNING|ERROR|FATAL):CONSOLE\S*\] (.*)", line)
        if m and (m.group(1) != "INFO" or "Uncaught" in m.group(2)):
            failures.append("console: " + m.group(2))
    for check in checks:
        ident, text = check.split("=", 1)
        m = re.search(r'id="%s"[^>]*>(.*?)</div>' % re.escape(ident),
                      dom.stdout, re.S)
        shown = html.unescape(re.sub(r"<[^>]*>", "", m.group(1))) if m else None
        if shown is None or text not in shown:
            failures.append("#%s shows %r, not %r" % (ident, shown, text))
    shot = subprocess.run(
        CHROMIUM + ["--window-size=1200,1000", "--virtual-time-budget=3000",
                    "--screenshot=" + os.path.abspath(screenshot), url],
        capture_output=True, text=True, timeout=120)
    if shot.returncode or not os.path.getsize(screenshot):
        failures.append("no screenshot: " + shot.stderr[-500:])
    for f in failures:
        print("FAIL", f)
    print("%s#%s: %d checks, %d failures" % (os.path.basename(page), state,
                                            len(checks), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
