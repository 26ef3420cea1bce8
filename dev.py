#!/usr/bin/env python3
"""Set everything up and run the demo or the tests: ``python3 dev.py demo`` / ``python3 dev.py test``.

Needs only Python >= 3.11 and this clone.  It creates ``.venv`` next to this file, installs the
package with all its extras into it (only when ``pyproject.toml`` changed since the last install),
and then runs the requested job inside that environment.  Extra arguments are passed through:
``python3 dev.py test -k catalog`` or ``python3 dev.py demo --out /tmp/demo``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MARSCRATERS_VENV", ROOT / ".venv"))
EXTRAS = "all"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def setup() -> Path:
    """Create the virtual environment and install the package into it if needed."""
    if sys.version_info < (3, 11):
        sys.exit(f"marscraters needs Python >= 3.11, this is {sys.version.split()[0]}")
    stamp = VENV / ".marscraters-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and _python().exists():
        return _python()
    if not _python().exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    _run([_python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    _run([_python(), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{EXTRAS}]"])
    stamp.write_text(digest)
    return _python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    job, rest = argv[0], argv[1:]
    python = setup()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if job == "setup":
        return 0
    if job == "demo":
        return subprocess.call([str(python), "-m", "marscraters", "demo", *rest], cwd=ROOT, env=env)
    return subprocess.call([str(python), "-m", "pytest", "tests", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
