"""The build step of epcap's wheel: the epcapd helper, compiled into the
package, and the client's optional C accelerator, epcap._speedups.

Everything else is in pyproject.toml. The helper is built by the Makefile's
own rule (the same sources and flags as `make build`, hardening included)
into a directory of the build's, never into the source tree, which may be
read-only: so are setuptools' build and egg-info directories. A missing
compiler or -dev package is one message naming the Debian packages.

The accelerator uses the limited API of CPython 3.11, so the wheel is
cp311-abi3: one build for every CPython from 3.11 on. Without Python's
headers it is left out (a warning names python3-dev) and the client runs in
pure Python, slower but the same.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

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


class OptionalSpeedups(build_ext):
    """build_ext, where a failure leaves the accelerator out, with a warning."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # distutils' compile and link errors, OSError
            print(
                f"warning: epcap's C accelerator was not built ({exc}); epcap works in pure "
                "Python, slower. To build it: sudo apt-get install -y python3-dev gcc, then "
                "reinstall epcap",
                file=sys.stderr,
            )


SPEEDUPS = Extension(
    "epcap._speedups",
    ["client/epcap/_speedups.c"],
    py_limited_api=True,
    extra_compile_args=[
        "-Wall",
        "-Wextra",
        "-Werror=implicit-function-declaration",
        "-fstack-protector-strong",
    ],
)


setup(
    ext_modules=[SPEEDUPS],
    cmdclass={"build_py": BuildWithHelper, "build_ext": OptionalSpeedups},
    options={
        "bdist_wheel": {"py_limited_api": "cp311"},
        "build": {"build_base": str(SCRATCH / "build")},
        "egg_info": {"egg_base": str(SCRATCH)},
    },
)
