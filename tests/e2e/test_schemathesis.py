"""Schemathesis against the running server: 1,000 cases per operation, default checks."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CASES_PER_OPERATION = 1000
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_api_conforms_to_its_openapi_document(system, tmp_path):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"http://127.0.0.1:{system.port}/openapi.json",
            "--max-examples",
            str(CASES_PER_OPERATION),
            "--no-shrink",
            "--seed",
            "20261127",
            "--generation-database",
            "none",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= CASES_PER_OPERATION * 2, output[-2000:]
