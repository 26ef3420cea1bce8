#!/usr/bin/env python3
"""Set everything up and run the demo or the tests: ``python3 dev.py demo`` / ``python3 dev.py test``.

Needs only Python >= 3.11 and this clone.  It creates ``.venv`` next to this file, installs the
package with the extras the job needs into it, and then runs the job inside that environment:
``demo`` needs the package and its map viewer (``[viz]``), ``test`` and ``setup`` everything
(``[all]``: the test tools, JAX, selenium, mkdocs).  It installs only when ``pyproject.toml``
changed since the last install or the job needs more than is installed, so switching between
``demo`` and ``test`` installs nothing once ``[all]`` is in.  Extra arguments are passed through:
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
#: the extras each job installs
EXTRAS = {"demo": "viz", "test": "all", "setup": "all"}
#: the extras an install of each set provides ([all] includes [viz])
PROVIDES = {"viz": {"viz"}, "all": {"all", "viz"}}


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def _installed() -> tuple[str, str]:
    """The stamp of the last install: (digest of pyproject.toml, extras), or empty strings."""
    stamp = VENV / ".marscraters-installed"
    words = stamp.read_text().split() if stamp.exists() and _python().exists() else []
    return (words[0], words[1]) if len(words) == 2 else ("", "")


def setup(extras: str = "all") -> Path:
    """Create the virtual environment and install the package with ``extras`` into it if needed."""
    if sys.version_info < (3, 11):
        sys.exit(f"marscraters needs Python >= 3.11, this is {sys.version.split()[0]}")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    done, installed = _installed()
    if done == digest and extras in PROVIDES.get(installed, set()):
        return _python()
    # a reinstall after a pyproject.toml change keeps what was there ([all] stays [all])
    if extras in PROVIDES.get(installed, set()):
        extras = installed
    if not _python().exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    _run([_python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    _run([_python(), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extras}]"])
    (VENV / ".marscraters-installed").write_text(f"{digest} {extras}")
    return _python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    job, rest = argv[0], argv[1:]
    python = setup(EXTRAS[job])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if job == "setup":
        return 0
    if job == "demo":
        # a second run replaces the first one's ./demo-out; a folder of the user's (--out) is only
        # replaced with --overwrite, as `marscraters demo` itself asks
        own_out = not any(a == "--out" or a.startswith("--out=") for a in rest)
        return subprocess.call([str(python), "-m", "marscraters", "demo", *rest, *(["--overwrite"] if own_out else [])],
                               cwd=ROOT, env=env)
    return subprocess.call([str(python), "-m", "pytest", "tests", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
