"""A helper the multi-device tests share: run a script on 8 fake CPU devices, read its report.

JAX fixes its device count when it starts, so the tests that need a mesh run a script in a
process of its own, which writes what it saw as JSON.
"""

import json
import os
import subprocess
import sys


def run_report(script: str, out, *args: str, timeout: int = 300, fake_devices: int = 8) -> dict:
    """Runs `python script out *args` on `fake_devices` CPU devices; returns the JSON at `out`.

    Raises:
      AssertionError: the script failed (with the end of its stderr).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={fake_devices}"
    process = subprocess.run(
        [sys.executable, script, str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    with open(out) as f:
        return json.load(f)
