"""epcap as a Python user gets it: `pip install` of a wheel built from a
read-only copy of this tree, into a venv of a real unprivileged user, reads
files with the helper the wheel carries; `epcap-admin install`, as root,
makes live capture work in each mode, and `uninstall` takes it all away."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import epcap
from epcap.admin import lib_dir, sudoers_name

from conftest import ROOT
from privileged import GROUP, MODES, as_user, run_as

pytestmark = pytest.mark.root

DEFAULT = lib_dir("/usr/local")  # where epcap-admin installs, and the client looks
DEPENDENCIES = ["msgpack>=1.0", "dpkt>=1.9.8"]


def tree_files() -> list[str]:
    """What a clone holds: the tracked files, and new ones not ignored."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheelhouse() -> Iterator[Path]:
    """The wheels of a read-only copy of this tree (straight, and through an
    sdist), beside the wheels of epcap's dependencies."""
    top = Path(tempfile.mkdtemp(prefix="epcap-wheels-", dir="/var/tmp"))
    try:
        yield build_wheels(top)
    finally:
        shutil.rmtree(top)


def copy_tree(tree: Path) -> None:
    """A copy of this tree's files (as a clone holds them) at ``tree``."""
    for name in tree_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)


def readable_by_all(top: Path) -> None:
    """Everything under ``top`` readable (and directories searchable) by the test's user."""
    for path in top.rglob("*"):
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)


def build_wheels(top: Path) -> Path:
    """Build into `top`: tree/ (the copy), sdist/, wheels/ (with the dependencies)."""
    top.chmod(0o755)
    tree, house, sdist = top / "tree", top / "wheels", top / "sdist"
    copy_tree(tree)
    # the sdist (its making writes a scratch copy beside setup.py), then a
    # read-only tree, as a root-owned checkout or a read-only mount is
    build = [sys.executable, "-m", "build", "-q", "--sdist", "-o", str(sdist), str(tree)]
    subprocess.run(build, check=True, capture_output=True)
    subprocess.run(["mount", "--bind", str(tree), str(tree)], check=True)
    pip = [sys.executable, "-m", "pip"]
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(tree)], check=True)
        subprocess.run([*pip, "wheel", "-q", "--no-deps", str(tree), "-w", str(house)], check=True)
    finally:
        subprocess.run(["umount", str(tree)], check=True)
    (archive,) = sdist.glob("epcap-*.tar.gz")
    subprocess.run([*pip, "wheel", "-q", "--no-deps", str(archive), "-w", str(sdist)], check=True)
    subprocess.run([*pip, "download", "-q", "-d", str(house), *DEPENDENCIES], check=True)
    readable_by_all(top)
    return top


def test_the_wheels_carry_the_helper(wheelhouse: Path) -> None:
    """Built straight from the read-only tree and from its sdist, alike."""
    for wheel in [
        *(wheelhouse / "wheels").glob("epcap-*.whl"),
        *(wheelhouse / "sdist").glob("*.whl"),
    ]:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo("epcap/libexec/epcapd")
            assert info.external_attr >> 16 & 0o777 == 0o755
            assert archive.read("epcap/libexec/epcapd")[:4] == b"\x7fELF"
            # the accelerator, for every CPython from 3.11 on (the limited API)
            assert archive.read("epcap/_speedups.abi3.so")[:4] == b"\x7fELF"
            wheel_info = archive.read("epcap-0.1.0.dist-info/WHEEL").decode()
            assert "Tag: cp311-abi3-linux_x86_64" in wheel_info
    assert len(list((wheelhouse / "sdist").glob("*.whl"))) == 1


@pytest.fixture(scope="module")
def venv(user: pwd.struct_passwd, wheelhouse: Path) -> Iterator[Path]:
    """A fresh venv of the user's, with `pip install epcap` from the wheelhouse."""
    top = Path(tempfile.mkdtemp(prefix="epcap-venv-", dir="/var/tmp"))
    try:
        yield user_venv(user, top, wheelhouse / "wheels")
    finally:
        shutil.rmtree(top)


def user_venv(user: pwd.struct_passwd, home: Path, wheels: Path) -> Path:
    """home/venv, the user's, with `pip install epcap` from ``wheels`` only."""
    os.chown(home, user.pw_uid, user.pw_gid)
    debian = "/usr/bin/python3"  # one the user may run (root's pyenv is under /root)
    base = debian if Path(debian).exists() else sys.executable
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_NO_CACHE_DIR": "1"}
    for command in (
        [base, "-m", "venv", str(home / "venv")],
        [str(home / "venv" / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
         str(wheels), "epcap"],
    ):  # fmt: skip
        subprocess.run([*as_user(user), *command], check=True, env=env, cwd=str(home))
    return home / "venv"


def as_user_in(
    venv: Path, user: pwd.struct_passwd, *command: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(venv.parent), "LANG": "C.UTF-8"}
    return subprocess.run([*as_user(user), *command], capture_output=True, text=True, env=env,
                          cwd="/", timeout=60)  # fmt: skip


READ_A_FILE = """
import epcap, pathlib
from epcap import _launch, _protocol
sample = pathlib.Path(epcap.__file__).parent / "data" / "sample.pcap"
with epcap.start(file=sample) as cap:
    print(len(list(cap)), cap.settings["uid"], _launch.find_helper(), _protocol.ACCELERATED)
"""


def test_files_need_nothing_more(user: pwd.struct_passwd, venv: Path) -> None:
    assert not DEFAULT.exists(), "no helper may be installed anywhere for this test"
    python = str(venv / "bin" / "python")
    read = as_user_in(venv, user, python, "-c", READ_A_FILE)
    assert read.returncode == 0, read.stderr
    count, uid, helper, accelerated = read.stdout.split()
    assert (int(count), int(uid), accelerated) == (15, user.pw_uid, "True")
    assert helper.startswith(str(venv)) and helper.endswith("epcap/libexec/epcapd")
    sample = Path(venv.glob("lib/python*/site-packages/epcap/data/sample.pcap").__next__())
    sniff = as_user_in(venv, user, str(venv / "bin" / "epcap-sniff"), "-r", str(sample))
    assert sniff.returncode == 0, sniff.stderr
    assert sniff.stdout.count("caplen: ") == 15 and "source_macaddr: " in sniff.stdout


@pytest.fixture
def nothing_installed() -> Iterator[None]:
    """The default place is free, and left so."""
    if DEFAULT.exists():
        pytest.skip(f"{DEFAULT} holds a real installation: not this test's to replace")
    yield
    assert not DEFAULT.exists(), f"{DEFAULT} is left behind"


@pytest.mark.usefixtures("nothing_installed")
@pytest.mark.parametrize("mode", MODES)
def test_epcap_admin_makes_live_capture_work_and_takes_it_away(
    mode: str, user: pwd.struct_passwd, venv: Path
) -> None:
    admin = str(venv / "bin" / "epcap-admin")
    python = str(venv / "bin" / "python")
    installed = subprocess.run([admin, "install", "--mode", mode, "--group", GROUP],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert (
        f"Installed {DEFAULT / 'epcapd'} ({mode}), for the members of group {GROUP}." in installed
    )
    try:
        status = subprocess.run([admin, "status"], capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
        assert f"mode: {mode}\n" in status.stdout and f"group: {GROUP} (mode " in status.stdout
        assert f"protocol: {epcap._protocol.VERSION} (this client speaks" in status.stdout
        driver, ready = run_as(user, udp=5, python=python)  # the client finds the helper itself
        assert ready["event"] == "ready", ready
        assert driver.next()["packets"] == [f"epcap {i}" for i in range(5)]
        driver.finish()
    finally:
        removed = subprocess.run([admin, "uninstall"], capture_output=True, text=True, check=True)
    left = subprocess.run(["find", str(DEFAULT)], capture_output=True, text=True)
    assert left.stdout == "" and "No such file" in left.stderr, left.stdout
    assert not (Path("/etc/sudoers.d") / sudoers_name("/usr/local")).exists()
    assert f"removed {DEFAULT / 'epcapd'}" in removed.stdout
    _, event = run_as(user, udp=1, python=python)
    assert event["type"] == "PermissionDeniedError", event
    assert "epcap-admin install --mode caps" in event["message"]


def test_missing_build_packages_are_named_not_installed(tmp_path: Path) -> None:
    """What a wheel build runs (setup.py): the Makefile's rule with DEPS=check."""
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"{tmp_path}/epcapd", f"BUILDDIR={tmp_path}", "DEPS=check",
         "SYSTEM_PACKAGES=make libnosuch-dev"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Missing Debian packages: libnosuch-dev" in result.stdout
    assert "sudo apt-get install -y libnosuch-dev" in result.stdout
    assert not (tmp_path / "epcapd").exists()


def test_the_helper_builds_without_python_headers(tmp_path: Path) -> None:
    """A wheel build's helper rule (DEPS=check) under a Python without
    headers: the helper builds, and python3-dev is asked only by the venv."""
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho /nonexistent/include\n")  # what sysconfig would say
    python.chmod(0o755)
    common = [f"BUILDDIR={tmp_path}", "DEPS=check", f"PYTHON={python}"]
    built = subprocess.run(["make", "-s", "-C", str(ROOT), f"{tmp_path}/epcapd", *common],
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "epcapd").read_bytes()[:4] == b"\x7fELF"
    asks = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), *common,
                           "--eval=show-python-packages: ; @echo '[$(PYTHON_PACKAGES)]'",
                           "show-python-packages"], capture_output=True, text=True)  # fmt: skip
    assert asks.stdout.strip() == "[python3-dev]", asks.stdout + asks.stderr


def test_a_helper_of_another_protocol_version_is_a_clear_error(tmp_path: Path) -> None:
    build = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(ROOT), f"{build}/epcapd", f"BUILDDIR={build}",
                    "PROTOCOL_VERSION=99"], check=True, capture_output=True)  # fmt: skip
    sample = Path(epcap.__file__).parent / "data" / "sample.pcap"
    with pytest.raises(epcap.ProtocolError) as info:
        epcap.start(file=sample, progname=build / "epcapd")
    speaks = epcap._protocol.VERSION
    assert f"the helper speaks protocol version 99, this client speaks {speaks}" in str(info.value)
    assert "epcap-admin install" in str(info.value)
    prefix = tmp_path / "prefix"
    admin = [sys.executable, "-m", "epcap.admin"]
    install = [*admin, "install", "--prefix", str(prefix), "--group", GROUP,
               "--helper", str(build / "epcapd"), "--test-install"]  # fmt: skip
    subprocess.run(install, check=True, capture_output=True)
    status = subprocess.run([*admin, "status", "--prefix", str(prefix)], capture_output=True,
                            text=True)  # fmt: skip
    assert status.returncode == 2
    assert f"protocol: 99 (this client speaks {epcap._protocol.VERSION})" in status.stdout
    assert "epcap-admin install again" in status.stdout
    subprocess.run([*admin, "uninstall", "--prefix", str(prefix)], check=True, capture_output=True)
    assert not prefix.exists()


def test_without_python_headers_the_wheel_is_pure_python(user: pwd.struct_passwd) -> None:
    """The accelerator's compile fails (as without python3-dev): the build
    says how to get it, and the wheel works in pure Python."""
    top = Path(tempfile.mkdtemp(prefix="epcap-pure-", dir="/var/tmp"))
    try:
        pure_wheel_works(user, top)
    finally:
        shutil.rmtree(top)


def pure_wheel_works(user: pwd.struct_passwd, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    tree, house = tmp_path / "tree", tmp_path / "wheels"
    copy_tree(tree)
    env = {**os.environ, "CPPFLAGS": "-include /nonexistent/Python.h"}  # the helper ignores it
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", str(tree), "-w", str(house)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert "epcap's C accelerator was not built" in built.stdout + built.stderr
    assert "sudo apt-get install -y python3-dev gcc" in built.stdout + built.stderr
    (wheel,) = house.glob("epcap-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "epcap/libexec/epcapd" in names
    assert not [n for n in names if "_speedups" in n and n.endswith(".so")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(house),
                    *DEPENDENCIES], check=True)  # fmt: skip
    readable_by_all(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    venv = user_venv(user, home, house)
    read = as_user_in(venv, user, str(venv / "bin" / "python"), "-c", READ_A_FILE)
    assert read.returncode == 0, read.stderr
    count, _uid, _helper, accelerated = read.stdout.split()
    assert (int(count), accelerated) == (15, "False")
