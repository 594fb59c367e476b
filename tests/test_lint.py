"""The code base stays ``ruff check`` and ``ruff format`` clean."""

import subprocess
import sys

from tests.helpers import ROOT


def test_ruff_check_and_format():
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
