"""A real headless Chromium for the HTML report: it renders the page, runs its script, measures it.

Chromium comes from Debian's packages (`apt-get install -y chromium`; `.ci/run` installs it in CI). Its
absence fails the tests that need it, with how to install it: a report no browser has opened is untested.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1280
# Measures the page as a person sees it at WIDTH, then uses its filters as a person would; the results go
# into the page itself, which --dump-dom prints.
_MEASURE = """
<script>
(function(){
  function visible(){return document.querySelectorAll('details.role:not(.hidden)').length;}
  var out={innerWidth:window.innerWidth, scrollWidth:document.documentElement.scrollWidth,
           bodyScrollWidth:document.body.scrollWidth, roles:{}, summary:{}, totals:{}};
  document.querySelectorAll('details.role').forEach(function(r){
    var key=r.dataset.account+'/'+r.dataset.verdict; out.roles[key]=(out.roles[key]||0)+1;});
  document.querySelectorAll('#summary td[data-verdict]').forEach(function(td){
    out.summary[td.dataset.account+'/'+td.dataset.verdict]=+td.textContent;});
  document.querySelectorAll('#summary td[data-total]').forEach(function(td){
    out.totals[td.dataset.total]=+td.textContent;});
  out.chartBars=document.querySelectorAll('#chart rect').length;
  out.visibleAtFirst=visible(); out.shownAtFirst=+document.getElementById('shown').textContent;
  document.querySelectorAll('input[name=verdict]').forEach(function(b){
    b.checked=true; b.dispatchEvent(new Event('change'));});
  out.visibleAll=visible();
  var text=document.getElementById('text'); text.value=%(search)s; text.dispatchEvent(new Event('input'));
  out.visibleSearch=visible(); text.value=''; text.dispatchEvent(new Event('input'));
  var account=document.getElementById('account'); account.value=%(account)s;
  account.dispatchEvent(new Event('change')); out.visibleAccount=visible();
  var pre=document.createElement('pre'); pre.id='measured'; pre.textContent=JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def chromium() -> str:
    """The browser's path; fails (never skips) when there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no Chromium to render the HTML report: apt-get install -y chromium (CI installs it)")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def measure(page: Path, work: Path, *, search: str, account: str = "") -> dict[str, Any]:
    """Open a copy of ``page`` with the measuring script at WIDTH pixels; what it measured."""
    copy = work / f"measured-{page.name}"
    text = page.read_text(encoding="utf-8")
    script = _MEASURE % {"search": json.dumps(search), "account": json.dumps(account)}
    copy.write_text(text.replace("</body>", script + "</body>"), encoding="utf-8")
    result = _run(f"--window-size={WIDTH},900", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    return dict(json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")))


def screenshot(page: Path, target: Path, *, height: int = 1400) -> tuple[int, int]:
    """A PNG of ``page`` at WIDTH pixels; its width and height as the PNG header gives them."""
    result = _run(f"--window-size={WIDTH},{height}", f"--screenshot={target}", page.as_uri())
    assert target.exists(), result.stderr[-2000:]
    header = target.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, tall = struct.unpack(">II", header[16:24])
    return int(width), int(tall)
