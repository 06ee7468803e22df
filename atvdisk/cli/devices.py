"""``atvdisk devices``: the disks a user could mean, and which ones atvdisk will refuse and why.

JSON (``--json``), format ``atvdisk-devices/1``; keys are stable::

    {
      "format": "atvdisk-devices/1",
      "layout": "atv1-openelec",          # the layout used for "too-small"
      "devices": [
        {
          "path": "/dev/sdf",             # the device node
          "name": "sdf",                  # what to type at the confirmation prompt
          "type": "disk" | "loop",
          "size": 4327464960,             # bytes
          "sector_size": 512,             # logical; "physical_sector_size" too
          "model", "vendor", "serial": str | null,
          "transport": "usb" | "sata" | "nvme" | "mmc" | "virtio" | "loop" | ... | null,
          "removable": bool, "hotplug": bool, "read_only": bool,
          "backing_file": str | null,     # loop devices
          "pttype": "gpt" | "dos" | null, "fstype": str | null, "label": str | null,
          "mountpoints": [str],           # a filesystem directly on the disk
          "partitions": [{"path", "name", "number", "start" (bytes), "size" (bytes), "fstype",
                          "label", "uuid", "partlabel", "parttype", "parttypename",
                          "partuuid", "mountpoints": [str] ("[SWAP]" = active swap),
                          "holders": [{"path", "name", "type", "mountpoints"}]}],
          "holders": [...],               # LVM/LUKS/md built on the whole disk
          "usable": bool,                 # true when atvdisk would write it (after confirmation)
          "refusals": [{"kind": "system" | "mounted" | "swap" | "read-only" | "too-small"
                                | "held" | "not-attached" | "not-a-disk" | "layout",
                        "message": str, "hint": str | null}],
          "warnings": [str]
        }
      ]
    }

``mounted`` and ``swap`` refusals are lifted by ``build --unmount``; the others are final.
"""

from __future__ import annotations

from typing import Any

import click

from atvdisk.errors import PlanError
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout
from atvdisk.target.checks import (
    Refusal,
    RefusalKind,
    SystemState,
    assess,
    describe_disk_lines,
    disk_to_dict,
)
from atvdisk.target.lsblk import BlockDisk, list_disks

DEVICES_FORMAT = "atvdisk-devices/1"


def layout_refusals(disk: BlockDisk, layout: Any) -> tuple[list[Refusal], list[str]]:
    """Whether ``layout`` fits ``disk``, judged by the resolver: (refusals, the plan's warnings)."""
    try:
        plan = resolve(layout, disk.size, disk.sector_size)
    except PlanError as e:
        if getattr(e, "need_bytes", None) is not None or "disk too small" in e.message:
            text = (
                e.message[e.message.index("disk too small") :]
                if "disk too small" in e.message
                else e.message
            )
            return [Refusal(RefusalKind.TOO_SMALL, text, e.hint)], []
        return [
            Refusal(
                RefusalKind.LAYOUT,
                f"the layout {layout.name} does not fit it: {e.message}",
                e.hint,
            )
        ], []
    return [], list(plan.warnings)


# The order refusals are listed in: the same as check_block_target's.
ORDER = [
    RefusalKind.NOT_A_DISK,
    RefusalKind.SYSTEM,
    RefusalKind.NOT_ATTACHED,
    RefusalKind.READ_ONLY,
    RefusalKind.TOO_SMALL,
    RefusalKind.LAYOUT,
    RefusalKind.HELD,
    RefusalKind.MOUNTED,
    RefusalKind.SWAP,
]


def assess_all(layout_name: str) -> list[tuple[BlockDisk, dict[str, Any]]]:
    """Every disk with its JSON entry (see the module docstring)."""
    layout = load_layout(layout_name)
    state = SystemState()
    out = []
    for disk in list_disks():
        fit, warnings = layout_refusals(disk, layout)
        refusals = sorted(assess(disk, state) + fit, key=lambda r: ORDER.index(r.kind))
        entry = {"path": disk.path, **disk_to_dict(disk)}
        entry["usable"] = not refusals
        entry["refusals"] = [
            {"kind": str(r.kind), "message": r.message, "hint": r.hint}
            for r in refusals
        ]
        entry["warnings"] = warnings
        out.append((disk, entry))
    return out


@click.command("devices")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (format atvdisk-devices/1) for scripts.",
)
@click.option(
    "--layout",
    "layout_name",
    default="atv1-openelec",
    show_default=True,
    metavar="NAME|PATH",
    help="Judge 'too small' against this layout.",
)
@click.pass_obj
def devices_cmd(console: Any, as_json: bool, layout_name: str) -> None:
    """List the disks you could build on, and the ones atvdisk will refuse, with why.

    Shows each disk's path, size, model, transport, whether it is removable, and its
    partitions with labels and mount points. Refused: the system disk, read-only disks, disks
    too small for the layout, disks in use by LVM/RAID; disks with mounted filesystems or
    active swap (build --unmount lifts those two). Attached loop devices count as disks.
    Reads only; run as root to see filesystem labels where udev does not record them.

    \b
    Example:
      atvdisk devices
      atvdisk devices --json
    """
    assessed = assess_all(layout_name)
    if as_json:
        document = {
            "format": DEVICES_FORMAT,
            "layout": layout_name,
            "devices": [entry for _, entry in assessed],
        }
        console.out_json(document, indent=2)
        return
    if not assessed:
        console.out("no disks found (lsblk lists none)")
        return
    for disk, entry in assessed:
        lines = describe_disk_lines(disk)
        status = "usable" if entry["usable"] else "REFUSED"
        console.out(f"{lines[0]}  [{status}]")
        for line in lines[1:]:
            console.out(line)
        only_mounts = all(r["kind"] in ("mounted", "swap") for r in entry["refusals"])
        for r in entry["refusals"]:
            lifted = " (build --unmount lifts this)" if only_mounts else ""
            console.out(f"  refused: {r['message']}{lifted}")
        for w in entry["warnings"]:
            console.out(f"  warning: {w}")
        console.out()
