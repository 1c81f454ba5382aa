"""Open the built documentation in headless Chromium and save screenshots of key pages.

Run after ``make docs``::

    python docs/screenshots.py                  # PNGs in docs/_build/screenshots/

It needs a Chromium (Debian: ``apt-get install chromium``) and no network: the
pages are opened from the disk, with the vendored MathJax. Before taking the
screenshots it checks every built page for links and images that point to a
missing local file, and the rendered DOM of each screenshot page for formulas
MathJax did not typeset or marked as errors; it exits with status 1 if it
finds any. Then look at the PNGs: figures present, formulas typeset, no
broken cross-references.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent

PAGES = {
    "home": ("index.html", 1800),
    "api_rais": ("generated/sk_reweight.RAISClassifier.html", 3200),
    "guide_rais": ("user_guide/rais.html", 4200),
    "gallery_priorities": ("auto_examples/plot_rais_priorities.html", 2600),
    "gallery_rais_vs_sgd": ("auto_examples/plot_rais_vs_uniform_sgd.html", 3000),
}
"""Screenshot name: (page relative to the build folder, window height in pixels)."""

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class _Links(HTMLParser):
    """Collects the local targets of ``href`` and ``src`` attributes of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                parts = urlsplit(value)
                if not parts.scheme and not parts.netloc and parts.path:
                    self.targets.append(unquote(parts.path))


def broken_links(build: Path) -> list[str]:
    """``page: target`` for every local link or image of the build that points nowhere."""
    problems = []
    for page in sorted(build.rglob("*.html")):
        if page.relative_to(build).parts[0] == "_static":  # the theme's templates
            continue
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            if not (page.parent / target).exists():
                problems.append(f"{page.relative_to(build)}: {target}")
    return problems


def _browser_args(browser: str) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--virtual-time-budget=20000",
    ]


def math_problems(browser: str, page: Path) -> list[str]:
    """What is wrong with the page's formulas once its scripts have run, if anything."""
    source = page.read_text(encoding="utf-8")
    dom = subprocess.run(
        [*_browser_args(browser), "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    problems = []
    if 'class="math' in source and "<mjx-container" not in dom:
        problems.append("formulas not typeset by MathJax")
    if "<mjx-merror" in dom:
        problems.append("MathJax error in a formula")
    return problems


def screenshot(browser: str, page: Path, output: Path, height: int) -> None:
    """One full-width screenshot of ``page`` after its scripts (MathJax) have run."""
    subprocess.run(
        [
            *_browser_args(browser),
            f"--window-size=1400,{height}",
            f"--screenshot={output}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=DOCS / "_build" / "html")
    parser.add_argument("--output", type=Path, default=DOCS / "_build" / "screenshots")
    args = parser.parse_args(argv)
    if not (args.build / "index.html").exists():
        print(f"{args.build}/index.html not found: run `make docs` first.", file=sys.stderr)
        return 2
    problems = broken_links(args.build)
    for problem in problems:
        print(f"broken local link: {problem}", file=sys.stderr)
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        print("No Chromium found (Debian: apt-get install chromium).", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    for name, (relative, height) in PAGES.items():
        page = args.build / relative
        for problem in math_problems(browser, page):
            problems.append(f"{relative}: {problem}")
            print(f"{relative}: {problem}", file=sys.stderr)
        output = args.output / f"{name}.png"
        screenshot(browser, page, output, height)
        print(output)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
