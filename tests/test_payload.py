from __future__ import annotations

import hashlib
import io
import plistlib
import tarfile

import pytest

from atvdisk.errors import InputError
from atvdisk.inputs.payload import BOOT_EFI_SIZE, OpenElecRelease, inspect_recovery
from atvdisk.inputs.sample import write_sample
from atvdisk.inputs.tree import FileTree, Inline


def release_dir(tmp_path, *, md5=True, kernel=b"K" * 1000, system=b"S" * 5000):
    d = tmp_path / "rel"
    d.mkdir()
    (d / "KERNEL").write_bytes(kernel)
    (d / "SYSTEM").write_bytes(system)
    if md5:
        (d / "KERNEL.md5").write_text(hashlib.md5(kernel).hexdigest() + "  target/KERNEL\n")
        (d / "SYSTEM.md5").write_text(hashlib.md5(system).hexdigest() + "  target/SYSTEM\n")
    return d


def test_release_directory(tmp_path):
    rel = OpenElecRelease.open(str(release_dir(tmp_path)))
    assert set(rel.files) == {"KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"}
    assert rel.files["SYSTEM"].size == 5000


def test_release_directory_without_md5_files(tmp_path):
    rel = OpenElecRelease.open(str(release_dir(tmp_path, md5=False)))
    assert set(rel.files) == {"KERNEL", "SYSTEM"}


def test_md5_mismatch_is_refused(tmp_path):
    d = release_dir(tmp_path)
    (d / "SYSTEM").write_bytes(b"S" * 4999 + b"X")
    with pytest.raises(InputError, match="SYSTEM does not match SYSTEM.md5"):
        OpenElecRelease.open(str(d))


def test_missing_system_is_named(tmp_path):
    d = release_dir(tmp_path)
    (d / "SYSTEM").unlink()
    with pytest.raises(InputError, match="missing SYSTEM"):
        OpenElecRelease.open(str(d))


def test_release_tarball(tmp_path):
    d = release_dir(tmp_path)
    tar_path = tmp_path / "OpenELEC-ATV.i386-3.2.4.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"):
            tar.add(d / name, arcname=f"OpenELEC-ATV.i386-3.2.4/target/{name}")
        tar.add(d / "KERNEL", arcname="OpenELEC-ATV.i386-3.2.4/README")
    rel = OpenElecRelease.open(str(tar_path))
    assert set(rel.files) == {"KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"}
    assert rel.read("KERNEL") == b"K" * 1000


def test_the_release_tarball_unpacked_is_accepted_as_it_unpacks(tmp_path):
    """`tar xf OpenELEC-ATV.i386-3.2.4.tar` gives OpenELEC-ATV.i386-3.2.4/target/KERNEL: the
    directory it made is a release as well as its target/ (issue 14); md5 sums still checked."""
    d = release_dir(tmp_path)
    tar_path = tmp_path / "OpenELEC-ATV.i386-3.2.4.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"):
            tar.add(d / name, arcname=f"OpenELEC-ATV.i386-3.2.4/target/{name}")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar_path) as tar:
        tar.extractall(unpacked, filter="data")
    top = unpacked / "OpenELEC-ATV.i386-3.2.4"
    for given in (top, top / "target"):
        rel = OpenElecRelease.open(str(given))
        assert set(rel.files) == {"KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"}
        assert rel.read("SYSTEM") == b"S" * 5000 and rel.path == str(given)
    (top / "target" / "SYSTEM").write_bytes(b"S" * 4999 + b"X")
    with pytest.raises(InputError, match="SYSTEM does not match SYSTEM.md5"):
        OpenElecRelease.open(str(top))
    (top / "target" / "KERNEL").unlink()
    with pytest.raises(InputError, match="missing KERNEL") as e:
        OpenElecRelease.open(str(top))
    assert "the directory it unpacks to" in e.value.hint
    with pytest.raises(InputError, match="missing KERNEL and SYSTEM"):
        OpenElecRelease.open(str(unpacked))  # one level too far up: not guessed


def test_release_tarball_with_bad_md5(tmp_path):
    d = release_dir(tmp_path)
    (d / "KERNEL.md5").write_text("0" * 32 + "  target/KERNEL\n")
    tar_path = tmp_path / "rel.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("KERNEL", "SYSTEM", "KERNEL.md5"):
            tar.add(d / name, arcname=f"x/target/{name}")
    with pytest.raises(InputError, match="KERNEL does not match KERNEL.md5"):
        OpenElecRelease.open(str(tar_path))


def _recovery_tree(flags: str | None, efi_size: int | None = BOOT_EFI_SIZE):
    tree = FileTree(default_mtime=0)
    if efi_size is not None:
        tree.add_file("boot.efi", Inline(b"x"), efi_size)
    if flags is not None:
        data = plistlib.dumps({"Kernel Flags": flags})
        tree.add_file("com.apple.Boot.plist", Inline(data), len(data))
    return tree


def _read(node):
    return node.source.data


def test_patchstick_mode_runs_patchstick_sh():
    report = inspect_recovery(_recovery_tree("atv-boot=patchstick video=vesafb"), "patchstick.sh", _read)
    assert report.kernel_flags == "atv-boot=patchstick video=vesafb" and report.boot_mode == "patchstick"
    assert report.warnings == ()


@pytest.mark.parametrize(
    "flags, script, warning",
    [
        ("atv-boot=manual", "patchstick.sh", "atv-boot=manual, which runs boot_linux.sh, but the boot script is /patchstick.sh"),
        ("atv-boot=patchstick", "boot_linux.sh", "runs patchstick.sh, but the boot script is /boot_linux.sh"),
        ("atv-boot=none", "patchstick.sh", "atv-bootloader will not run the generated /patchstick.sh"),
        ("video=vesafb", "patchstick.sh", "atv-boot=auto"),
    ],
)
def test_boot_mode_mismatch_warns(flags, script, warning):
    report = inspect_recovery(_recovery_tree(flags), script, _read)
    assert any(warning in w for w in report.warnings), report.warnings


def test_boot_efi_checks():
    assert any("no boot.efi" in w for w in inspect_recovery(_recovery_tree("atv-boot=patchstick", None), "patchstick.sh", _read).warnings)
    assert any("not the 298800 bytes" in w for w in inspect_recovery(_recovery_tree("atv-boot=patchstick", 1234), "patchstick.sh", _read).warnings)


def test_sample_payload_is_deterministic_and_consistent(tmp_path):
    a = write_sample(tmp_path / "a")
    b = write_sample(tmp_path / "b")
    for x, y in ((a.restore, b.restore), (a.recovery, b.recovery), (a.openelec / "SYSTEM", b.openelec / "SYSTEM")):
        assert x.read_bytes() == y.read_bytes()
    OpenElecRelease.open(str(a.openelec))  # its md5 files match
    with tarfile.open(a.restore) as tar:
        efi = tar.getmember("boot.efi")
        assert efi.size == BOOT_EFI_SIZE
        assert tar.extractfile(efi).read().startswith(b"ATVDISK SAMPLE PAYLOAD - NOT A REAL FILE")
    with tarfile.open(a.recovery) as tar:
        flags = plistlib.load(io.BytesIO(tar.extractfile("com.apple.Boot.plist").read()))["Kernel Flags"]
        assert "atv-boot=patchstick" in flags
        assert {"patchstick.sh", "patchstick.boot", "mach_kernel"} <= set(tar.getnames())
