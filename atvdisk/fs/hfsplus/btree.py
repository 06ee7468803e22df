"""HFS+ B-trees: packing sorted records into nodes (writer) and checked node parsing (reader).

A B-tree file (TN1150 "B-Trees") is laid out here as::

    node 0              header node (header record, 128-byte user record, map record)
    nodes 1 .. L        leaf nodes, in key order, chained by fLink/bLink
    nodes L+1 ..        index nodes, level by level up to the root (chained per level)
    then                map nodes, if the header's map record cannot describe every node
    the rest            free nodes: all zero (the volume sets kHFSUnusedNodeFixMask)

:func:`plan_btree` is pure arithmetic on record sizes and first keys: it returns the node
counts the layout needs before anything is written. :func:`build_nodes` yields the node images
for the same records, packed identically. Their ``_stream`` forms take the records as one
iterator of ``(key, data or size, room)`` and keep only one leaf's records and each leaf's first
key (the catalog of a volume with 100,000 files is never in memory whole). Records are ``(key, data)`` byte strings, ``key``
including its 16-bit keyLength; the caller sorts them. Leaves are filled greedily; each index
record holds its child's first key (variable length when ``kBTVariableIndexKeysMask`` is set,
else padded to ``maxKeyLength``) and the child's node number.

:func:`parse_node` checks a node the way a careful reader must (kind, height, record offsets
ascending, even and inside the node, key lengths inside their records) and raises
:class:`~atvdisk.fs.hfsplus.errors.HfsCorruptError` otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from atvdisk.fs.hfsplus.errors import HfsCorruptError
from atvdisk.fs.hfsplus.records import (
    BTHeaderRec,
    BTNodeDescriptor,
    kBTBigKeysMask,
    kBTHeaderNode,
    kBTIndexNode,
    kBTLeafNode,
    kBTMapNode,
    kBTreeHeaderUserBytes,
    kBTVariableIndexKeysMask,
    kHFSBTreeType,
)

DESC = BTNodeDescriptor.SIZE  # 14
HEADER_MAP_OFFSET = DESC + BTHeaderRec.SIZE + kBTreeHeaderUserBytes  # 248


def header_map_bytes(node_size: int) -> int:
    """Size of the map record in the header node (nodeSize - 256)."""
    return node_size - 256


def map_node_bytes(node_size: int) -> int:
    """Size of the map record of a map node (nodeSize - 20)."""
    return node_size - 20


def map_nodes_needed(total_nodes: int, node_size: int) -> int:
    hb = header_map_bytes(node_size) * 8
    if total_nodes <= hb:
        return 0
    mb = map_node_bytes(node_size) * 8
    return -(-(total_nodes - hb) // mb)


@dataclass(frozen=True)
class BTreeSpec:
    """What differs between the catalog, extents and attributes B-trees."""

    node_size: int
    max_key_length: int
    attributes: int = kBTBigKeysMask
    key_compare_type: int = 0
    btree_type: int = kHFSBTreeType

    @property
    def variable_index_keys(self) -> bool:
        return bool(self.attributes & kBTVariableIndexKeysMask)


@dataclass(frozen=True)
class BTreePlan:
    """Node counts and numbering of a packed B-tree (see the module docstring)."""

    spec: BTreeSpec
    leaf_records: int
    level_nodes: tuple[int, ...]  # nodes per level, leaves first; () for an empty tree
    map_nodes: int
    total_nodes: int
    clump_size: int

    @property
    def depth(self) -> int:
        return len(self.level_nodes)

    @property
    def used_nodes(self) -> int:
        """Header, leaf and index nodes (map nodes not included)."""
        return 1 + sum(self.level_nodes)

    @property
    def free_nodes(self) -> int:
        return self.total_nodes - self.used_nodes - self.map_nodes

    @property
    def first_leaf(self) -> int:
        return 1 if self.level_nodes else 0

    @property
    def last_leaf(self) -> int:
        return self.level_nodes[0] if self.level_nodes else 0

    @property
    def root(self) -> int:
        return self.used_nodes - 1 if self.level_nodes else 0

    @property
    def first_map_node(self) -> int:
        return self.used_nodes if self.map_nodes else 0

    @property
    def file_size(self) -> int:
        return self.total_nodes * self.spec.node_size

    def header_record(self) -> BTHeaderRec:
        return BTHeaderRec(
            treeDepth=self.depth,
            rootNode=self.root,
            leafRecords=self.leaf_records,
            firstLeafNode=self.first_leaf,
            lastLeafNode=self.last_leaf,
            nodeSize=self.spec.node_size,
            maxKeyLength=self.spec.max_key_length,
            totalNodes=self.total_nodes,
            freeNodes=self.free_nodes,
            clumpSize=self.clump_size,
            btreeType=self.spec.btree_type,
            keyCompareType=self.spec.key_compare_type,
            attributes=self.spec.attributes,
        )


def _index_key(key: bytes, spec: BTreeSpec) -> bytes:
    if spec.variable_index_keys:
        return key
    body = key[2:]
    if len(body) > spec.max_key_length:
        raise ValueError(f"key of {len(body)} bytes exceeds maxKeyLength {spec.max_key_length}")
    return struct.pack(">H", spec.max_key_length) + body + bytes(spec.max_key_length - len(body))


def _pack_greedy(
    sizes: Sequence[int], node_size: int, room: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """Split record sizes into nodes: list of (first, end) record index ranges.

    ``room[i]`` (optional) is the number of bytes record ``i`` needs from its start to the end
    of the node, beyond what it occupies (see ``plan_btree``).
    """
    groups: list[tuple[int, int]] = []
    start = 0
    used = DESC + 2  # descriptor + the free-space offset
    data_end = DESC  # where the next record would start
    for i, size in enumerate(sizes):
        if size % 2:
            raise ValueError("B-tree records must have an even size")
        need = room[i] if room is not None else 0
        if DESC + 2 + size + 2 > node_size or DESC + need > node_size:
            raise ValueError(f"a record of {size} bytes does not fit a {node_size}-byte node")
        if used + size + 2 > node_size or data_end + need > node_size:
            groups.append((start, i))
            start = i
            used = DESC + 2
            data_end = DESC
        used += size + 2
        data_end += size
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


def _index_levels(
    keys: list[bytes], spec: BTreeSpec
) -> list[tuple[list[tuple[int, int]], list[bytes]]]:
    """The index levels above leaves whose first keys are ``keys``: each level (groups of the
    level below's nodes, first keys of its nodes), up to the root."""
    levels = []
    while len(keys) > 1:
        idx_keys = [_index_key(k, spec) for k in keys]
        sizes = [len(k) + 4 for k in idx_keys]
        groups = _pack_greedy(sizes, spec.node_size)
        keys = [keys[g[0]] for g in groups]
        levels.append((groups, keys))
    return levels


def _leaves(
    records: Iterable[tuple[bytes, bytes | int, int]], node_size: int
) -> Iterator[list[tuple[bytes, bytes | int]]]:
    """Fill leaf nodes greedily from ``(key, data or data size, room)`` records, yielding each
    node's records as soon as it is full (the same packing as :func:`_pack_greedy`), so that a
    catalog of any size is packed with one node's records in memory."""
    group: list[tuple[bytes, bytes | int]] = []
    used = DESC + 2  # descriptor + the free-space offset
    data_end = DESC  # where the next record would start
    for key, data, need in records:
        size = len(key) + (data if isinstance(data, int) else len(data))
        if size % 2:
            raise ValueError("B-tree records must have an even size")
        if DESC + 2 + size + 2 > node_size or DESC + need > node_size:
            raise ValueError(f"a record of {size} bytes does not fit a {node_size}-byte node")
        if used + size + 2 > node_size or data_end + need > node_size:
            yield group
            group = []
            used = DESC + 2
            data_end = DESC
        group.append((key, data))
        used += size + 2
        data_end += size
    if group:
        yield group


def _with_room(
    records: Iterable[tuple[bytes, bytes]] | Iterable[tuple[bytes, int]], room: Iterable[int] | None
) -> Iterator[tuple[bytes, bytes | int, int]]:
    if room is None:
        return ((k, d, 0) for k, d in records)
    return ((k, d, r) for (k, d), r in zip(records, room, strict=True))


def plan_btree(
    records: Sequence[tuple[bytes, bytes]] | Sequence[tuple[bytes, int]],
    spec: BTreeSpec,
    *,
    min_total_nodes: int = 1,
    node_multiple: int = 1,
    clump_size: int = 0,
    room: Sequence[int] | None = None,
) -> BTreePlan:
    """Node counts for ``records`` (sorted ``(key, data)`` or ``(key, data_size)`` pairs).

    ``min_total_nodes`` reserves free nodes for growth; ``node_multiple`` keeps the file a
    whole number of allocation blocks (``max(1, block_size // node_size)``). ``room[i]``, if
    given, is how many bytes leaf record ``i`` needs between its start and the end of its node
    (a reader-compatibility rule: The Sleuth Kit 4.15 reads a fixed-size 520-byte thread record
    after the key of every folder thread). Pass the same ``room`` to :func:`build_nodes`.
    """
    return plan_btree_stream(
        _with_room(records, room),
        spec,
        min_total_nodes=min_total_nodes,
        node_multiple=node_multiple,
        clump_size=clump_size,
    )


def plan_btree_stream(
    records: Iterable[tuple[bytes, bytes | int, int]],
    spec: BTreeSpec,
    *,
    min_total_nodes: int = 1,
    node_multiple: int = 1,
    clump_size: int = 0,
) -> BTreePlan:
    """:func:`plan_btree` for records given as one stream of ``(key, data or data size,
    room)``, sorted: only each leaf's first key is kept (the index levels need nothing else)."""
    count = 0
    first_keys: list[bytes] = []
    for group in _leaves(records, spec.node_size):
        first_keys.append(group[0][0])
        count += len(group)
    level_nodes: tuple[int, ...] = ()
    if first_keys:
        level_nodes = (len(first_keys),) + tuple(len(g) for g, _ in _index_levels(first_keys, spec))
    used = 1 + sum(level_nodes)
    total = max(min_total_nodes, used)
    while True:
        total = -(-total // node_multiple) * node_multiple
        m = map_nodes_needed(total, spec.node_size)
        if used + m <= total:
            break
        total = used + m
    return BTreePlan(spec, count, level_nodes, map_nodes_needed(total, spec.node_size), total, clump_size)


def _node(
    node_size: int, kind: int, height: int, flink: int, blink: int, records: Sequence[bytes]
) -> bytearray:
    buf = bytearray(node_size)
    buf[0:DESC] = BTNodeDescriptor(flink, blink, kind, height, len(records)).pack()
    off = DESC
    offsets = [off]
    for r in records:
        buf[off : off + len(r)] = r
        off += len(r)
        offsets.append(off)
    if off + 2 * len(offsets) > node_size:
        raise ValueError("node overflow")  # _pack_greedy prevents this
    for i, o in enumerate(offsets):
        struct.pack_into(">H", buf, node_size - 2 * (i + 1), o)
    return buf


def _set_bits(bitmap: bytearray, first: int, count: int) -> None:
    for n in range(first, first + count):
        bitmap[n >> 3] |= 0x80 >> (n & 7)


def header_node(plan: BTreePlan) -> bytes:
    ns = plan.spec.node_size
    used = plan.used_nodes + plan.map_nodes
    bitmap = bytearray(header_map_bytes(ns))
    _set_bits(bitmap, 0, min(used, len(bitmap) * 8))
    recs = [plan.header_record().pack(), bytes(kBTreeHeaderUserBytes), bytes(bitmap)]
    return bytes(_node(ns, kBTHeaderNode, 0, plan.first_map_node, 0, recs))


def map_node_images(plan: BTreePlan) -> list[bytes]:
    ns = plan.spec.node_size
    used = plan.used_nodes + plan.map_nodes
    hb = header_map_bytes(ns) * 8
    mb = map_node_bytes(ns) * 8
    out = []
    for k in range(plan.map_nodes):
        first = hb + k * mb
        bitmap = bytearray(map_node_bytes(ns))
        n = max(0, min(used - first, mb))
        _set_bits(bitmap, 0, n)
        this = plan.first_map_node + k
        flink = this + 1 if k + 1 < plan.map_nodes else 0
        out.append(bytes(_node(ns, kBTMapNode, 0, flink, 0, [bytes(bitmap)])))
    return out


def build_nodes(
    plan: BTreePlan, records: Iterable[tuple[bytes, bytes]], room: Iterable[int] | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(node_number, image)`` for every non-free node of ``plan``, in node order.

    ``records`` (and ``room``) must be what ``plan`` was made from, with the data.
    """
    return build_nodes_stream(plan, _with_room(records, room))


def build_nodes_stream(plan: BTreePlan, records: Iterable[tuple[bytes, bytes, int]]) -> Iterator[tuple[int, bytes]]:
    """:func:`build_nodes` for records given as one stream of ``(key, data, room)``: each leaf
    node is yielded as soon as it is full (the records are not kept), then the index nodes from
    the leaves' first keys, then the map nodes."""
    spec = plan.spec
    ns = spec.node_size
    yield 0, header_node(plan)
    n_leaves = plan.level_nodes[0] if plan.level_nodes else 0
    first_keys: list[bytes] = []
    count = 0
    for j, group in enumerate(_leaves(records, ns)):
        this = 1 + j
        if this > n_leaves:
            raise ValueError("records do not pack as planned")
        first_keys.append(group[0][0])
        count += len(group)
        flink = this + 1 if this < n_leaves else 0
        blink = this - 1 if j > 0 else 0
        recs = [k + d for k, d in group]  # type: ignore[operator]
        yield this, bytes(_node(ns, kBTLeafNode, 1, flink, blink, recs))
    if count != plan.leaf_records:
        raise ValueError("records do not match the plan")
    levels = _index_levels(first_keys, spec)
    if (len(first_keys),) + tuple(len(g) for g, _ in levels) != plan.level_nodes and first_keys:
        raise ValueError("records do not pack as planned")
    first_node = 1 + len(first_keys)
    child_first = 1
    child_keys = first_keys
    for height, (groups, keys) in enumerate(levels, start=2):
        n = len(groups)
        for j, (a, b) in enumerate(groups):
            this = first_node + j
            flink = this + 1 if j + 1 < n else 0
            blink = this - 1 if j > 0 else 0
            recs = [_index_key(child_keys[i], spec) + struct.pack(">I", child_first + i) for i in range(a, b)]
            yield this, bytes(_node(ns, kBTIndexNode, height, flink, blink, recs))
        child_first = first_node
        first_node += n
        child_keys = keys
    for k, img in enumerate(map_node_images(plan)):
        yield plan.first_map_node + k, img


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Node:
    number: int
    descriptor: BTNodeDescriptor
    records: tuple[bytes, ...]


def parse_node(data: bytes, number: int, node_size: int, *, max_key_length: int, depth: int, what: str) -> Node:
    """Parse and check one node image. ``what`` names the tree in messages."""
    if len(data) != node_size:
        raise HfsCorruptError(f"{what} node {number}: short read ({len(data)} of {node_size} bytes)")
    d = BTNodeDescriptor.unpack(data)
    where = f"{what} node {number}"
    if d.kind in (kBTHeaderNode, kBTMapNode):
        if d.height != 0:
            raise HfsCorruptError(f"{where}: header/map node with height {d.height}")
    elif d.kind == kBTLeafNode:
        if d.height != 1:
            raise HfsCorruptError(f"{where}: leaf node with height {d.height}")
    elif d.kind == kBTIndexNode:
        if d.height <= 1 or d.height > depth:
            raise HfsCorruptError(f"{where}: index node with height {d.height} (tree depth {depth})")
    else:
        raise HfsCorruptError(f"{where}: unknown node kind {d.kind}")
    n = d.numRecords
    if DESC + 2 * (n + 1) > node_size:
        raise HfsCorruptError(f"{where}: {n} records cannot fit a {node_size}-byte node")
    offs = [struct.unpack_from(">H", data, node_size - 2 * (i + 1))[0] for i in range(n + 1)]
    if offs[0] != DESC:
        raise HfsCorruptError(f"{where}: first record offset {offs[0]}, expected {DESC}")
    limit = node_size - 2 * (n + 1)
    records = []
    for i in range(n):
        a, b = offs[i], offs[i + 1]
        if b <= a or b > limit or b & 1:
            raise HfsCorruptError(f"{where}: record {i} has bad offsets {a}..{b}")
        rec = bytes(data[a:b])
        if d.kind in (kBTLeafNode, kBTIndexNode):
            (kl,) = struct.unpack_from(">H", rec, 0)
            if kl > max_key_length or kl + 2 >= len(rec) or kl & 1:
                raise HfsCorruptError(f"{where}: record {i} has bad key length {kl}")
        records.append(rec)
    return Node(number, d, tuple(records))


def index_child(rec: bytes, spec: BTreeSpec) -> tuple[bytes, int]:
    """Split an index record into (key with its length field, child node number)."""
    (kl,) = struct.unpack_from(">H", rec, 0)
    klen = kl if spec.variable_index_keys else spec.max_key_length
    if 2 + klen + 4 > len(rec):
        raise HfsCorruptError("index record too short for its key and child pointer")
    (child,) = struct.unpack_from(">I", rec, 2 + klen)
    return rec[: 2 + kl], child
