"""Generated files kept in the repository (docs/CONFIG.md, the KubeRay manifest): one way to write
them, and one way to check that they are fresh (their tests run the `--check`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def write_or_check(out: Path, render: Callable[[], str], root: Path, description: str, script: str) -> int:
    """The generator's command line: write `out`, or with --check exit 1 when it differs from render()."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    text = render()
    if parser.parse_args().check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out.relative_to(root)} is stale: run python {script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out.relative_to(root)}")
    return 0
