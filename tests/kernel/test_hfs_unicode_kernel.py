"""Debian's Linux kernel (hfsplus, booted under qemu) judges the HFS+ name rules.

The proof volumes of tests/hfs_unicode_cases.py, written by our writer, are attached read-only
and looked up by the kernel's own driver (see that module for why this proves the whole
case-folding table and the decomposition):

* mounted with ``nodecompose``: every one of the 51,015 fold classes of the BMP is found by its
  own name in one directory (so the kernel's order and equality of folded names is ours), and
  every other member of a class and every ignorable finds its class (the table itself);
* mounted normally: every BMP character is looked up precomposed and as stored, and the kernel
  answers what TN1150/Unicode 3.2 says except where its Unicode 2.1-era table is documented to
  differ (``KERNEL_DECOMPOSES``, ``KERNEL_DIFFERS``, no reordering, nothing outside the BMP);
* HFSX: no folding, no ignorables, names still decomposed.

One boot serves every test of this module (about 30 s under TCG).
"""

from __future__ import annotations

import hfs_unicode_cases as cases
import pytest

from .harness import Disk

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def proof(module_run_guest, tmp_path_factory):
    out = tmp_path_factory.mktemp("uproof-kernel")
    hp, hx = cases.unicode_proof_volumes()
    disks = []
    for v in (hp, hx):
        path = out / f"{v.label}.img"
        cases.build_image(v, path)
        disks.append(Disk(path, readonly=True))
    script = cases.guest_script(hp, "/dev/sda") + cases.guest_script(hx, "/dev/sdb")
    files = {**cases.guest_job_files(hp), **cases.guest_job_files(hx)}
    result = module_run_guest(disks, script, files=files, timeout=300)
    return hp, hx, result


def _report(problems: list[str]) -> str:
    return f"{len(problems)} disagreements with the kernel:\n" + "\n".join(problems[:60])


def test_every_phase_mounted_as_asked(proof):
    hp, hx, result = proof
    for v in (hp, hx):
        for ph in v.phases:
            rec = result.mount(cases.mount_record(v, ph))
            assert rec.rc == 0 and rec.fstype == "hfsplus", (rec.stderr, rec.dmesg_text())
            assert set(ph.mount_options.split(",")) <= set(rec.options), rec.options


def test_kernel_folds_and_orders_names_exactly_as_our_table(proof):
    hp, _, result = proof
    problems = cases.check_guest_results(hp, result.files, phases=["nodecompose"])
    assert not problems, _report(problems)


def test_kernel_decomposes_as_tn1150_except_its_documented_differences(proof):
    hp, _, result = proof
    problems = cases.check_guest_results(hp, result.files, phases=["decompose"])
    assert not problems, _report(problems)


def test_hfsx_is_case_sensitive_without_ignorables_and_decomposed(proof):
    _, hx, result = proof
    problems = cases.check_guest_results(hx, result.files)
    assert not problems, _report(problems)
