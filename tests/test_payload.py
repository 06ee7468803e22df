from __future__ import annotations

import hashlib
import io
import plistlib
import tarfile

import pytest

from atvdisk.errors import InputError
from atvdisk.inputs.payload import (
    BOOT_EFI_SIZE,
    OpenElecRelease,
    check_release_fits,
    fitting_layouts,
    inspect_boot_efi,
)
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
    with pytest.raises(InputError, match=r"missing KERNEL \(1.x-3.2\) or MACH_KERNEL \(4.x\) and SYSTEM"):
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


def _efi_tree(efi_size: int | None):
    tree = FileTree(default_mtime=0)
    if efi_size is not None:
        tree.add_file("boot.efi", Inline(b"x"), efi_size)
    return tree


def test_boot_efi_checks():
    assert inspect_boot_efi(_efi_tree(BOOT_EFI_SIZE)) == []
    assert any("no boot.efi" in w for w in inspect_boot_efi(_efi_tree(None)))
    assert any("not the 298800 bytes" in w for w in inspect_boot_efi(_efi_tree(1234)))


def release4_dir(tmp_path, *, md5=True):
    d = tmp_path / "rel4"
    d.mkdir()
    for name, data in (("MACH_KERNEL", b"M" * 700), ("SYSTEM", b"S" * 900)):
        (d / name).write_bytes(data)
        if md5:
            (d / f"{name}.md5").write_text(hashlib.md5(data).hexdigest() + f"  target/{name}\n")
    return d


def test_4x_release_directory_has_mach_kernel(tmp_path):
    rel = OpenElecRelease.open(str(release4_dir(tmp_path)))
    assert set(rel.files) == {"MACH_KERNEL", "SYSTEM", "MACH_KERNEL.md5", "SYSTEM.md5"}
    assert rel.kernels == ("MACH_KERNEL",)
    assert "4.x" in rel.describe()
    assert fitting_layouts(rel) == ["atv1-openelec4"]


def test_4x_release_md5_of_mach_kernel_is_checked(tmp_path):
    d = release4_dir(tmp_path)
    (d / "MACH_KERNEL").write_bytes(b"M" * 699 + b"X")
    with pytest.raises(InputError, match="MACH_KERNEL does not match MACH_KERNEL.md5"):
        OpenElecRelease.open(str(d))


def test_4x_release_tarball(tmp_path):
    d = release4_dir(tmp_path)
    tar_path = tmp_path / "OpenELEC-ATV.i386-4.2.1.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("MACH_KERNEL", "SYSTEM", "MACH_KERNEL.md5", "SYSTEM.md5"):
            tar.add(d / name, arcname=f"OpenELEC-ATV.i386-4.2.1/target/{name}")
    rel = OpenElecRelease.open(str(tar_path))
    assert rel.kernels == ("MACH_KERNEL",) and rel.read("MACH_KERNEL") == b"M" * 700


def test_extracted_release_directory_holding_target_is_accepted(tmp_path):
    top = tmp_path / "OpenELEC-ATV.i386-3.2.4"
    top.mkdir()
    release_dir(tmp_path).rename(top / "target")
    (top / "README").write_text("an extracted release\n")
    rel = OpenElecRelease.open(str(top))
    assert set(rel.files) == {"KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5"}
    assert fitting_layouts(rel) == ["atv1-openelec"]


def test_release_without_any_kernel_names_both(tmp_path):
    d = release_dir(tmp_path)
    (d / "KERNEL").unlink()
    with pytest.raises(InputError, match=r"missing KERNEL \(1.x-3.2\) or MACH_KERNEL \(4.x\)"):
        OpenElecRelease.open(str(d))


@pytest.mark.parametrize(("kernel", "layout", "fits"), [("KERNEL", "atv1-openelec4", "atv1-openelec"), ("MACH_KERNEL", "atv1-openelec", "atv1-openelec4")])
def test_a_release_that_does_not_fit_names_the_layout_that_does(tmp_path, kernel, layout, fits):
    rel = OpenElecRelease.open(str(release_dir(tmp_path) if kernel == "KERNEL" else release4_dir(tmp_path)))
    other = "MACH_KERNEL" if kernel == "KERNEL" else "KERNEL"
    with pytest.raises(InputError) as info:
        check_release_fits(rel, other, layout)
    assert f"layout {layout} boots {other}, which it does not have" in str(info.value)
    assert f"--layout {fits}" in info.value.hint
    check_release_fits(rel, kernel, fits)  # no error


def test_oversized_md5_file_is_refused_before_reading(tmp_path):
    d = release_dir(tmp_path)
    with open(d / "SYSTEM.md5", "r+b") as f:
        f.truncate(2 << 20)
    with pytest.raises(InputError, match="an md5 file is a line of text"):
        OpenElecRelease.open(str(d))


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
    rel4 = OpenElecRelease.open(str(a.openelec4))  # a 4.x release: MACH_KERNEL, no KERNEL
    assert rel4.kernels == ("MACH_KERNEL",)
    assert a.openelec_for("MACH_KERNEL") == a.openelec4 and a.openelec_for("KERNEL") == a.openelec
    assert (a.openelec4 / "MACH_KERNEL").read_bytes() == (b.openelec4 / "MACH_KERNEL").read_bytes()
