"""Asset preparation: a clear failure without the kernel, a deterministic cached initramfs whose
cache key follows its inputs, and archives the host's cpio reads back as written."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from . import initramfs
from .assets import GuestAssets, prepare_kernel
from .errors import AssetError
from .initramfs import Cpio, base_archive, build_base_initramfs, module_load_order

pytestmark = pytest.mark.kernel


def test_no_mirror_and_no_cache_fails_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lists = tmp_path / "apt" / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "apt" / "cache" / "archives" / "partial").mkdir(parents=True)
    conf = tmp_path / "apt.conf"
    conf.write_text(
        'Dir::Etc::sourcelist "/dev/null";\n'
        f'Dir::Etc::sourceparts "{tmp_path}/none";\n'
        f'Dir::State::Lists "{lists}";\n'
        f'Dir::Cache "{tmp_path}/apt/cache";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(conf))  # an apt that knows no package at all
    monkeypatch.delenv("ATVDISK_KERNEL_DEB", raising=False)
    with pytest.raises(AssetError) as failed:
        prepare_kernel(tmp_path / "empty-cache")
    message = str(failed.value)
    assert "cannot resolve the image package of linux-image-amd64" in message
    assert "apt-get update" in message  # the hint


def test_missing_deb_override_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATVDISK_KERNEL_DEB", str(tmp_path / "nope.deb"))
    with pytest.raises(AssetError, match="nope.deb: no such file"):
        prepare_kernel(tmp_path / "cache")


def test_prepared_kernel_is_the_package_linux_image_amd64_depends_on(guest_assets: GuestAssets) -> None:
    kernel = guest_assets.kernel
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Depends: {kernel.package}" in depends
    assert (kernel.modules_dir / "modules.dep").stat().st_size > 0
    assert kernel.vmlinuz.read_bytes()[0x202:0x206] == b"HdrS"
    assert kernel.vmlinux is None or kernel.vmlinux.read_bytes()[:4] == b"\x7fELF"
    config = kernel.config()
    assert config["CONFIG_EFI_PARTITION"] == "y" and config["CONFIG_KEXEC"] == "y"


def test_modules_load_after_their_dependencies(guest_assets: GuestAssets) -> None:
    kernel = guest_assets.kernel
    deps = {}
    for line in (kernel.modules_dir / "modules.dep").read_text().splitlines():
        key, _, rest = line.partition(":")
        deps[key] = rest.split()
    order = [path for path, _ in module_load_order(kernel)]
    assert len(order) == len(set(order))
    for i, path in enumerate(order):
        assert set(deps[path]) <= set(order[:i]), path
    names = {Path(p).name for p in order}
    assert {"ahci.ko", "sd_mod.ko", "hfsplus.ko", "vfat.ko", "ext4.ko", "jbd2.ko", "nls_utf8.ko"} <= names


def test_initramfs_cache_key_follows_the_inputs(
    guest_assets: GuestAssets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = guest_assets.kernel
    path, digest = build_base_initramfs(kernel, tmp_path)
    assert build_base_initramfs(kernel, tmp_path) == (path, digest)  # cached, same key
    assert path.read_bytes() == base_archive(kernel).pack()  # deterministic
    changed = tmp_path / "guest"
    shutil.copytree(initramfs.GUEST_DIR, changed)
    with open(changed / "init.sh", "a") as f:
        f.write("# changed\n")
    monkeypatch.setattr(initramfs, "GUEST_DIR", changed)
    path2, digest2 = build_base_initramfs(kernel, tmp_path)
    assert digest2 != digest and path2 != path and path2.exists()


def test_cpio_reads_back_with_the_host_cpio(tmp_path: Path) -> None:
    archive = Cpio()
    archive.file("etc/a file", b"content\n", 0o640)
    archive.file("bin/tool", b"#!/bin/sh\n", 0o755)
    archive.symlink("bin/alias", "tool")
    archive.dir("empty", 0o700)
    (tmp_path / "out").mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet", "--no-absolute-filenames"],
        input=archive.pack(),
        cwd=tmp_path / "out",
        check=True,
    )
    out = tmp_path / "out"
    assert (out / "etc" / "a file").read_bytes() == b"content\n"
    assert stat.S_IMODE((out / "etc" / "a file").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "bin" / "tool").stat().st_mode) == 0o755
    assert (out / "bin" / "alias").readlink() == Path("tool")
    assert stat.S_IMODE((out / "empty").stat().st_mode) == 0o700


@pytest.mark.parametrize("suffix", [".ko", ".ko.xz", ".ko.zst", ".ko.gz"])
def test_compressed_modules_are_stored_decompressed(tmp_path: Path, suffix: str) -> None:
    payload = b"\x7fELF module bytes " * 100
    plain = tmp_path / "m.ko"
    plain.write_bytes(payload)
    tool = {".ko.xz": ["xz", "-k"], ".ko.zst": ["zstd", "-q"], ".ko.gz": ["gzip", "-k"]}.get(suffix)
    if tool:
        subprocess.run([*tool, str(plain)], check=True)
    assert initramfs._read_module(tmp_path / f"m{suffix}") == payload
