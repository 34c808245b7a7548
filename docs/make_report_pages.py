"""Write ``docs/_static/reports/NAME.png``: the first page of each shipped spec's report.

Each spec of ``reports/*.toml`` is built with ``scaleinv report`` into a temporary folder and
its PDF's first page turned into a small PNG by ``pdftoppm`` (TeX and poppler needed). The
PNGs are committed; CI builds the documentation from them without rebuilding reports::

    python docs/make_report_pages.py                    # every shipped spec
    python docs/make_report_pages.py reports/units.toml # this one only
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "_static" / "reports"
#: Pixels per inch of the PNGs: a letter page of 850 x 1100 pixels, readable and small.
RESOLUTION = 100


def report_page(spec: Path, out: Path) -> Path:
    """Build ``spec``'s report in a temporary folder and write its first page to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / spec.stem
        subprocess.run(["scaleinv", "report", str(spec), "--out", str(folder)], check=True)
        pdf = folder / "report.pdf"
        args = ["-png", "-r", str(RESOLUTION), "-f", "1", "-l", "1", "-singlefile"]
        subprocess.run(["pdftoppm", *args, str(pdf), str(out.with_suffix(""))], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, help="spec files (default: reports/*.toml)")
    args = parser.parse_args()
    PAGES.mkdir(parents=True, exist_ok=True)
    for spec in args.specs or sorted((ROOT / "reports").glob("*.toml")):
        print(report_page(spec.resolve(), PAGES / f"{spec.stem}.png"))


if __name__ == "__main__":
    main()
