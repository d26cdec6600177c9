"""--timeline FILE.svg: the run as a picture. Its SVG from known processes (hostile argv
included), then a real `make -j2` of a small C project traced with --tree and
--timeline, drawn by a real browser (chromium, headless) into a PNG that is checked not to
be blank and to show the bars."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bptrace_exec.output.timeline import ENDS, TOP, svg
from bptrace_exec.output.tree import Proc
from conftest import run_tool

SVG = "{http://www.w3.org/2000/svg}"
MS = 1_000_000


def proc(pid: int, argv: list[bytes], began: int, ended: int | None, **end: int) -> Proc:
    return Proc(f"b:{pid}:{pid}", pid, b"c", "", tuple(argv), began_ns=began * MS,
                ended_ns=None if ended is None else ended * MS,
                lifetime_ns=None if ended is None else (ended - began) * MS,
                status=end.get("status", None if ended is None else 0),
                signal=end.get("signal", 0))


def test_one_bar_per_process_coloured_by_its_end() -> None:
    root = proc(1, [b"make", b"-j2"], 0, 100)
    root.children = [proc(2, [b"cc", b"-c", b"a.c"], 10, 40),
                     proc(3, [b"cc", b"<script>&\x1b[31m", b"\xff"], 20, 60, status=1),
                     proc(4, [b"sleep", b"9"], 30, 90, signal=9), proc(5, [b"tail"], 50, None)]
    text = svg([root], 0, 120 * MS, "test\x01")
    assert "\x01" not in text  # a host's name, escaped too
    assert "\x1b" not in text and "<script>" not in text
    picture = ET.fromstring(text)  # well-formed XML
    groups = picture.findall(f"{SVG}g")
    assert len(groups) == 5
    tips = [g.findtext(f"{SVG}title") or "" for g in groups]
    assert tips[0].startswith("make -j2\npid 1, 100 ms, exit 0")
    # argv as bash would read it back, escaped for XML in the file and read back here
    assert tips[2].startswith("cc $'<script>&\\E[31m' $'\\xff'\npid 3, 40 ms, exit 1")
    colours = [g.find(f"{SVG}rect").get("fill") for g in groups]  # type: ignore[union-attr]
    assert colours == [ENDS[e][0] for e in ("ok", "ok", "failed", "killed", "running")]
    widths = [float(g.find(f"{SVG}rect").get("width") or 0) for g in groups]  # type: ignore[union-attr]
    assert widths[0] > widths[4] > widths[1] > 0  # 100 ms, still running at 120, 30 ms


def test_thousands_of_processes_stay_one_picture() -> None:
    root = proc(1, [b"sh"], 0, 5000)
    root.children = [proc(10 + i, [b"true", str(i).encode()], i, i + 1) for i in range(3000)]
    text = svg([root], 0, 5000 * MS, "many")
    assert text.count("<g><title>") == 3001
    assert int(re.search(r'height="(\d+)"', text).group(1)) < 3001 * 12  # type: ignore[union-attr]


@pytest.mark.root
def test_a_build_as_a_tree_and_a_picture(engine: str, tmp_path: Path,
                                         nothing_left_running: None) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is needed (scripts/setup --test installs it)")
    project = tmp_path / "project"
    project.mkdir()
    objects = []
    for i in range(6):
        (project / f"f{i}.c").write_text(f"int f{i}(int x) {{ return x * {i}; }}\n")
        objects.append(f"f{i}.o")
    (project / "main.c").write_text("int f0(int);\nint main(void) { return f0(0); }\n")
    (project / "Makefile").write_text(
        f"prog: main.o {' '.join(objects)}\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O2 -c $< -o $@\n")
    picture = tmp_path / "build.svg"
    run = run_tool("execve", "--tree", "--timeline", str(picture), "--bpftrace", engine,
                   "--", "make", "-C", str(project), "-j2", timeout=300)
    assert run.returncode == 0, run.stderr
    assert (project / "prog").exists()
    tree = [line for line in run.stdout.splitlines() if re.match(r"\s+\d+ ", line)]
    pids = [line.split()[0] for line in tree]
    compilers = [line for line in tree if "cc -O2 -c" in line]
    assert len(compilers) == 7 and len(tree) >= 7 * 3  # cc, cc1 and as for each file
    bars = ET.parse(picture).getroot().findall(f"{SVG}g")
    assert len(bars) == len(tree), "one bar per process that ran"
    assert sorted(pids) == sorted(re.search(r"\npid (\d+)", g.findtext(f"{SVG}title") or "")
                                  .group(1) for g in bars)  # type: ignore[union-attr]
    screenshot = tmp_path / "build.png"
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}",
         "--window-size=1400,700", picture.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        browser.wait(timeout=120)
    finally:
        if browser.poll() is None:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()
    check_screenshot(screenshot)


def check_screenshot(path: Path) -> None:
    """Not blank: the page's white, the bars' green (every process here exits 0), and
    text; drawn over much of the picture's height."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20, "a picture of one or a few colours is blank"
    green = tuple(int(ENDS["ok"][0][i:i + 2], 16) for i in (1, 3, 5))
    rows = {y for y in range(image.height) if any(image.getpixel((x, y)) == green
                                                  for x in range(0, image.width, 4))}
    assert len(rows) > 100, f"bars on {len(rows)} rows of pixels"


def test_the_axis_is_the_run_traced() -> None:
    """A process that started long before the trace is drawn from its start, and one
    still running to the last event: a replay a week later is the same picture."""
    old = proc(1, [b"bash"], -3_600_000, 50)  # an hour before
    old.children = [proc(2, [b"ls"], 10, 20), proc(3, [b"tail"], 30, None)]
    picture = ET.fromstring(svg([old], 0, 60 * MS, "run"))
    rects = [g.find(f"{SVG}rect") for g in picture.findall(f"{SVG}g")]
    left = [float(r.get("x") or 0) for r in rects]  # type: ignore[union-attr]
    widths = [float(r.get("width") or 0) for r in rects]  # type: ignore[union-attr]
    assert left[0] == min(left) and widths[0] > 1000  # 50 of the 60 ms
    assert 200 < widths[1] < 250 and 650 < widths[2] < 700  # 10 ms, to the end at 60


def test_a_subshell_never_seen_and_an_end_unknown() -> None:
    """A `(sh)` placed by tree.with_unseen_parents (it neither exec'd nor ended while
    traced) is drawn from its first child's start, its child under it; a process whose
    end the filters may have dropped is not drawn as running."""
    sh = proc(1, [b"sh", b"-c", b"(sleep 9; true) &"], 0, 100)
    subshell = Proc("b:2:2", 2, b"sh", "b:1:1")  # no exec, no end, no start seen
    subshell.children = [proc(3, [b"sleep", b"9"], 30, None)]
    unknown = proc(4, [b"cat"], 40, None)
    unknown.ends_kept = False
    sh.children = [subshell, unknown]
    picture = ET.fromstring(svg([sh], 0, 120 * MS, "run"))
    groups = picture.findall(f"{SVG}g")
    tips = [g.findtext(f"{SVG}title") or "" for g in groups]
    assert [t.split("\n")[0] for t in tips] == ["sh -c '(sleep 9; true) &'", "(sh)", "sleep 9",
                                                "cat"]
    assert "not traced itself" in tips[1] and tips[3].endswith("unknown")
    rects = [g.find(f"{SVG}rect") for g in groups]
    left = [float(r.get("x") or 0) for r in rects]  # type: ignore[union-attr]
    assert left[1] == left[2] > left[0]  # from its child's start, 30 ms
    colours = [r.get("fill") for r in rects]  # type: ignore[union-attr]
    assert colours[1:] == [ENDS[e][0] for e in ("running", "running", "unknown")]
    # the lines from each bar to its children's: sh to (sh) and cat, (sh) to sleep
    links = [ln for ln in picture.findall(f"{SVG}line") if ln.get("stroke") == "#bdbdbd"]
    assert sorted(float(ln.get("y2") or 0) for ln in links) == [
        TOP + 16 * row + 8 for row in (1, 2, 3)]  # rows of 16 px, to each one's middle
