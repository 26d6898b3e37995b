"""docs/CONFIG.md is what scripts/gen_config_docs.py makes of settings.py right now."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_config_reference_is_fresh():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_config_reference_names_every_key():
    from settings import AppConfig

    text = (ROOT / "docs" / "CONFIG.md").read_text()
    for section, field in AppConfig.model_fields.items():
        for key in field.annotation.model_fields:
            assert f"| `{key}` |" in text, f"{section}.{key}"
