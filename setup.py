"""The build step of epcap's wheel: the epcapd helper, compiled into the package.

Everything else is in pyproject.toml. The helper is built by the Makefile's
own rule (the same sources and flags as `make build`, hardening included)
into a directory of the build's, never into the source tree, which may be
read-only: so are setuptools' build and egg-info directories. A missing
compiler or -dev package is one message naming the Debian packages.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools before 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
SCRATCH = Path(tempfile.mkdtemp(prefix="epcap-build-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


class BuildWithHelper(build_py):
    """build_py, and the helper into epcap/libexec/ of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install uses the source tree's priv/epcapd
        out = Path(self.build_lib) / "epcap" / "libexec"
        out.mkdir(parents=True, exist_ok=True)
        build_dir = SCRATCH / "helper"
        if shutil.which("make") is None:
            sys.exit("building epcap needs make: sudo apt-get install -y make gcc pkg-config")
        # the release build whatever make this runs under (make SANITIZE=1 test)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        done = subprocess.run(
            ["make", "-s", "-C", str(HERE), f"{build_dir}/epcapd", f"BUILDDIR={build_dir}",
             "DEPS=check", "SANITIZE="],
            env=env,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit("building the epcapd helper failed (see above)")
        shutil.copy(build_dir / "epcapd", out / "epcapd")
        os.chmod(out / "epcapd", 0o755)


class BinaryDistribution(Distribution):
    """The package holds a program built for this platform."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for this platform and any Python 3: the helper is a program,
    not an extension module."""

    def get_tag(self) -> tuple[str, str, str]:
        return "py3", "none", super().get_tag()[2]


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildWithHelper, "bdist_wheel": PlatformWheel},
    options={
        "build": {"build_base": str(SCRATCH / "build")},
        "egg_info": {"egg_base": str(SCRATCH)},
    },
)
