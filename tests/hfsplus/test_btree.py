"""B-tree packing: plan and build agree, nodes parse back, index keys point at their children,
map records and map nodes are right, and the reader-side node checks refuse bad nodes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.fs.hfsplus.btree import (
    BTreeSpec,
    build_nodes,
    header_map_bytes,
    index_child,
    map_node_bytes,
    parse_node,
    plan_btree,
)
from atvdisk.fs.hfsplus.errors import HfsCorruptError
from atvdisk.fs.hfsplus.records import (
    BTHeaderRec,
    kBTBigKeysMask,
    kBTHeaderNode,
    kBTIndexNode,
    kBTLeafNode,
    kBTMapNode,
    kBTVariableIndexKeysMask,
)

CAT = kBTBigKeysMask | kBTVariableIndexKeysMask


def _records(draw_sizes: list[tuple[int, int]]) -> list[tuple[bytes, bytes]]:
    """Sorted catalog-like records: key = (parent i, a name of n units), data of d bytes."""
    out = []
    for i, (n, d) in enumerate(draw_sizes):
        name = ("%06d" % i).encode("utf-16-be") + b"\x00a" * n
        key = struct.pack(">HIH", 6 + len(name), 100 + i, len(name) // 2) + name
        out.append((key, bytes([i % 251]) * (2 * d)))
    return out


def _bits(bitmap: bytes, n: int) -> list[int]:
    return [n_ for n_ in range(n) if bitmap[n_ >> 3] & (0x80 >> (n_ & 7))]


def _walk(nodes: dict[int, bytes], spec: BTreeSpec, plan) -> list[tuple[bytes, bytes]]:
    h = BTHeaderRec.unpack(nodes[0], 14)
    assert (h.treeDepth, h.rootNode, h.leafRecords) == (plan.depth, plan.root, plan.leaf_records)
    assert (h.firstLeafNode, h.lastLeafNode, h.totalNodes, h.freeNodes) == (
        plan.first_leaf, plan.last_leaf, plan.total_nodes, plan.free_nodes,
    )  # fmt: skip
    assert h.attributes == spec.attributes and h.nodeSize == spec.node_size
    # every node parses
    parsed = {
        n: parse_node(img, n, spec.node_size, max_key_length=spec.max_key_length, depth=plan.depth, what="t")
        for n, img in nodes.items()
    }  # fmt: skip
    assert parsed[0].descriptor.kind == kBTHeaderNode
    # index structure: each index record's key is its child's first key, heights descend
    if plan.depth:
        stack = [(plan.root, plan.depth)]
        while stack:
            n, height = stack.pop()
            node = parsed[n]
            assert node.descriptor.height == height
            if height > 1:
                assert node.descriptor.kind == kBTIndexNode
                for rec in node.records:
                    key, child = index_child(rec, spec)
                    first = parsed[child].records[0]
                    (kl,) = struct.unpack_from(">H", first)
                    assert first[: 2 + kl] == key
                    stack.append((child, height - 1))
            else:
                assert node.descriptor.kind == kBTLeafNode
    # every level is one chain (TN1150: fLink/bLink link the nodes of a level; 0 ends it)
    by_height: dict[int, list[int]] = {}
    for n, node in parsed.items():
        d = node.descriptor
        if d.kind in (kBTIndexNode, kBTLeafNode):
            by_height.setdefault(d.height, []).append(n)
            if d.fLink:
                assert parsed[d.fLink].descriptor.height == d.height and parsed[d.fLink].descriptor.bLink == n
            if d.bLink:
                assert parsed[d.bLink].descriptor.height == d.height and parsed[d.bLink].descriptor.fLink == n
    for level in by_height.values():
        assert sum(parsed[n].descriptor.bLink == 0 for n in level) == 1
        assert sum(parsed[n].descriptor.fLink == 0 for n in level) == 1
    # leaf chain gives back the records, in order
    out = []
    n, prev = plan.first_leaf, 0
    while n:
        d = parsed[n].descriptor
        assert d.kind == kBTLeafNode and d.bLink == prev
        for rec in parsed[n].records:
            (kl,) = struct.unpack_from(">H", rec)
            out.append((rec[: 2 + kl], rec[2 + kl :]))
        prev, n = n, d.fLink
    assert prev == plan.last_leaf
    # the allocation map marks exactly the nodes in use
    maps = [parsed[0].records[2]]
    m = parsed[0].descriptor.fLink
    while m:
        assert parsed[m].descriptor.kind == kBTMapNode
        maps.append(parsed[m].records[0])
        m = parsed[m].descriptor.fLink
    assert len(maps) == 1 + plan.map_nodes
    bitmap = b"".join(maps)
    assert _bits(bitmap, len(bitmap) * 8) == sorted(nodes)
    assert len(nodes) == plan.total_nodes - plan.free_nodes
    return out


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 249), st.integers(1, 130)), max_size=300),
    node_size=st.sampled_from([512, 4096, 8192]),
    extra=st.integers(0, 50),
)
def test_pack_and_read_back(sizes, node_size, extra) -> None:
    spec = BTreeSpec(node_size, 516, CAT, 0xCF)
    if node_size == 512:
        sizes = [(min(n, 40), min(d, 40)) for n, d in sizes]  # records must fit a 512-byte node
    records = _records(sizes)
    plan = plan_btree(records, spec, min_total_nodes=extra)
    nodes = dict(build_nodes(plan, records))
    assert _walk(nodes, spec, plan) == records
    assert plan.total_nodes >= extra
    if len(records) > 0:
        assert plan.depth >= 1


def test_fixed_size_index_keys() -> None:
    """Extents B-tree style: index keys are padded to maxKeyLength (no kBTVariableIndexKeysMask)."""
    spec = BTreeSpec(512, 10, kBTBigKeysMask, 0)
    records = [(struct.pack(">HBBII", 10, 0, 0, 20 + i // 3, i), bytes(64)) for i in range(200)]
    plan = plan_btree(records, spec)
    assert plan.depth >= 3
    nodes = dict(build_nodes(plan, records))
    assert _walk(nodes, spec, plan) == records


def test_map_nodes() -> None:
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    records = _records([(3, 10)] * 50)
    total = header_map_bytes(512) * 8 + map_node_bytes(512) * 8 + 10  # needs two map nodes
    plan = plan_btree(records, spec, min_total_nodes=total)
    assert plan.map_nodes == 2
    nodes = dict(build_nodes(plan, records))
    assert _walk(nodes, spec, plan) == records


def test_map_nodes_grow_the_file_when_needed() -> None:
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    hb = header_map_bytes(512) * 8
    plan = plan_btree(_records([(3, 10)] * 50), spec, min_total_nodes=hb)
    assert plan.map_nodes == 0 and plan.total_nodes == hb
    plan = plan_btree(_records([(3, 10)] * 50), spec, min_total_nodes=hb + 1)
    assert plan.map_nodes == 1 and plan.used_nodes + 1 <= plan.total_nodes


def test_node_multiple_rounds_up() -> None:
    spec = BTreeSpec(4096, 516, CAT, 0xCF)
    plan = plan_btree([], spec, min_total_nodes=3, node_multiple=4)
    assert plan.total_nodes == 4 and plan.depth == 0 and plan.root == 0
    nodes = dict(build_nodes(plan, []))
    assert list(nodes) == [0]


def test_room_keeps_records_away_from_the_node_end() -> None:
    spec = BTreeSpec(4096, 516, CAT, 0xCF)
    records = _records([(5, 100)] * 200)
    room = [528 if i % 3 == 0 else 0 for i in range(len(records))]
    plan = plan_btree(records, spec, room=room)
    nodes = dict(build_nodes(plan, records, room))
    assert _walk(nodes, spec, plan) == records
    index = {k: i for i, (k, _) in enumerate(records)}
    n = plan.first_leaf
    while n:
        node = parse_node(nodes[n], n, 4096, max_key_length=516, depth=plan.depth, what="t")
        off = 14
        for rec in node.records:
            (kl,) = struct.unpack_from(">H", rec)
            i = index[rec[: 2 + kl]]
            assert off + room[i] <= 4096
            off += len(rec)
        n = node.descriptor.fLink


def test_record_too_big_for_node() -> None:
    with pytest.raises(ValueError):
        plan_btree(_records([(250, 200)]), BTreeSpec(512, 516, CAT))


def _leaf(records: list[bytes], node_size: int = 512) -> bytearray:
    buf = bytearray(node_size)
    struct.pack_into(">IIbBHH", buf, 0, 0, 0, -1, 1, len(records), 0)
    off = 14
    offs = [off]
    for r in records:
        buf[off : off + len(r)] = r
        off += len(r)
        offs.append(off)
    for i, o in enumerate(offs):
        struct.pack_into(">H", buf, node_size - 2 * (i + 1), o)
    return buf


def test_parse_node_checks() -> None:
    rec = struct.pack(">HIH", 8, 5, 1) + b"\x00a" + bytes(10)
    good = _leaf([rec, rec])
    parse_node(bytes(good), 1, 512, max_key_length=516, depth=1, what="t")

    def bad(mutate, message):
        b = bytearray(good)
        mutate(b)
        with pytest.raises(HfsCorruptError, match=message):
            parse_node(bytes(b), 1, 512, max_key_length=516, depth=1, what="t")

    bad(lambda b: b.__setitem__(8, 7), "unknown node kind")
    bad(lambda b: b.__setitem__(9, 2), "leaf node with height 2")
    bad(lambda b: struct.pack_into(">H", b, 510, 16), "first record offset")
    bad(lambda b: struct.pack_into(">H", b, 508, 13), "bad offsets")  # below the first
    bad(lambda b: struct.pack_into(">H", b, 508, 41), "bad offsets")  # odd
    bad(lambda b: struct.pack_into(">H", b, 506, 600), "bad offsets")  # past the table
    bad(lambda b: struct.pack_into(">H", b, 14, 600), "bad key length")
    bad(lambda b: struct.pack_into(">H", b, 10, 300), "cannot fit")
    bad(lambda b: (b.__setitem__(8, 0), b.__setitem__(9, 5)), "index node with height 5")
    bad(lambda b: (b.__setitem__(8, 0), b.__setitem__(9, 1)), "index node with height 1")  # that is a leaf's
    bad(lambda b: b.__setitem__(9, 0), "leaf node with height 0")
    bad(lambda b: (b.__setitem__(8, 1), b.__setitem__(9, 1)), "header/map node with height 1")
    bad(lambda b: (b.__setitem__(8, 2), b.__setitem__(9, 1)), "header/map node with height 1")
    with pytest.raises(HfsCorruptError, match="short read"):
        parse_node(bytes(good[:100]), 1, 512, max_key_length=516, depth=1, what="t")


# -- limits (issue 15): odd sizes, exact fits, short index records, map nodes of big trees ----


def _sized(key_units: int, data: int) -> tuple[bytes, bytes]:
    """One catalog-like record whose key has ``key_units`` UTF-16 units and ``data`` bytes."""
    name = b"\x00a" * key_units
    return struct.pack(">HIH", 6 + len(name), 16, key_units) + name, bytes(data)


def test_odd_record_sizes_are_refused() -> None:
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    key, _ = _sized(3, 0)
    with pytest.raises(ValueError, match="even size"):
        plan_btree([(key, b"x" * 11)], spec)
    with pytest.raises(ValueError, match="even size"):
        plan_btree([(key, 10), (key + b"\x00a", 13)], spec)  # (key, data size) form too
    plan_btree([(key, 12)], spec)


@pytest.mark.parametrize("node_size", [512, 4096])
def test_a_record_that_exactly_fills_a_node(node_size: int) -> None:
    """A node holds its 14-byte descriptor, the records and one 2-byte offset per record plus
    the free-space offset: one record of node_size - 18 bytes fills it exactly."""
    spec = BTreeSpec(node_size, 516, CAT, 0xCF)
    key, _ = _sized(3, 0)
    full = node_size - 14 - 4
    records = [(key, bytes(full - len(key)))]
    plan = plan_btree(records, spec)
    assert plan.level_nodes == (1,)
    nodes = dict(build_nodes(plan, records))
    assert _walk(nodes, spec, plan) == records
    leaf = nodes[1]
    assert struct.unpack_from(">HH", leaf, node_size - 4) == (node_size - 4, 14)  # free space starts at the table
    with pytest.raises(ValueError, match="does not fit"):
        plan_btree([(key, bytes(full - len(key) + 2))], spec)
    # after a full leaf, the next leaf can be filled just as exactly by two records
    half = (node_size - 14 - 6) // 2
    three = [records[0], (key[:-2] + b"\x00b", bytes(half - len(key))), (key[:-2] + b"\x00c", bytes(half - len(key)))]
    plan = plan_btree(three, spec)
    assert plan.level_nodes == (2, 1)
    assert _walk(dict(build_nodes(plan, three)), spec, plan) == three
    # two records filling a node exactly stay in one leaf; two bytes more split them
    half = (node_size - 14 - 6) // 2
    pair = [(key, bytes(half - len(key))), (key[:-2] + b"\x00b", bytes(half - len(key)))]
    assert plan_btree(pair, spec).level_nodes == (1,)
    bigger = [pair[0], (pair[1][0], pair[1][1] + b"\0\0")]
    assert plan_btree(bigger, spec).level_nodes == (2, 1)
    nodes = dict(build_nodes(plan_btree(bigger, spec), bigger))
    assert _walk(nodes, spec, plan_btree(bigger, spec)) == bigger


def test_room_boundary() -> None:
    """A record may need room up to the node's end: exactly the node is allowed, more is not."""
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    key, data = _sized(3, 20)
    plan_btree([(key, data)], spec, room=[512 - 14])
    with pytest.raises(ValueError, match="does not fit"):
        plan_btree([(key, data)], spec, room=[512 - 14 + 2])
    # room pushes the next record into a new node when it would end too close to the end
    recs = [(key, data), (key[:-2] + b"\x00b", data)]
    assert plan_btree(recs, spec, room=[0, 512 - 14 - len(key) - len(data)]).level_nodes == (1,)
    assert plan_btree(recs, spec, room=[0, 512 - 14 - len(key) - len(data) + 2]).level_nodes == (2, 1)


def test_index_records_too_short_for_their_key() -> None:
    var = BTreeSpec(4096, 516, CAT, 0xCF)
    key, _ = _sized(3, 0)
    assert index_child(key + struct.pack(">I", 7), var) == (key, 7)
    for short in (key + b"\0\0", key, key[:4]):
        with pytest.raises(HfsCorruptError, match="too short"):
            index_child(short, var)
    fixed = BTreeSpec(512, 10, kBTBigKeysMask, 0)  # extents: keys padded to maxKeyLength
    ext_key = struct.pack(">HBBII", 10, 0, 0, 20, 0)
    assert index_child(ext_key + struct.pack(">I", 3), fixed) == (ext_key, 3)
    with pytest.raises(HfsCorruptError, match="too short"):
        index_child(ext_key[:-2] + struct.pack(">I", 3), fixed)  # a variable-length key where a padded one belongs


def test_map_node_counts_at_their_boundaries() -> None:
    from atvdisk.fs.hfsplus.btree import map_nodes_needed

    for ns in (512, 4096, 32768):
        hb, mb = header_map_bytes(ns) * 8, map_node_bytes(ns) * 8
        assert (hb, mb) == ((ns - 256) * 8, (ns - 20) * 8)
        assert map_nodes_needed(hb, ns) == 0
        assert map_nodes_needed(hb + 1, ns) == 1
        assert map_nodes_needed(hb + mb, ns) == 1
        assert map_nodes_needed(hb + mb + 1, ns) == 2
        assert map_nodes_needed(hb + 3 * mb, ns) == 3


def test_big_tree_grows_for_its_map_nodes() -> None:
    """More records than the header's map can track, and no spare nodes asked for: the file
    grows by the map nodes it needs, and every node in use (map nodes included) is marked."""
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    records = _records([(40, 100)] * 4200)  # about two records a leaf: > 2048 nodes
    plan = plan_btree(records, spec)
    assert plan.used_nodes > header_map_bytes(512) * 8
    assert plan.map_nodes >= 1 and plan.free_nodes >= 0
    assert plan.total_nodes == plan.used_nodes + plan.map_nodes
    nodes = dict(build_nodes(plan, records))
    assert _walk(nodes, spec, plan) == records
    # asked for exactly the nodes in use plus some: the map nodes come out of the spare ones
    roomy = plan_btree(records, spec, min_total_nodes=plan.total_nodes + 7)
    assert roomy.total_nodes == plan.total_nodes + 7 and roomy.free_nodes == 7


def test_build_refuses_records_that_do_not_pack_as_planned() -> None:
    spec = BTreeSpec(512, 516, CAT, 0xCF)
    records = _records([(3, 10)] * 30)
    plan = plan_btree(records, spec)
    bigger = [(k, d + bytes(200)) for k, d in records]  # same count, more leaves
    with pytest.raises(ValueError, match="do not pack as planned"):
        list(build_nodes(plan, bigger))
    with pytest.raises(ValueError, match="do not match the plan"):
        list(build_nodes(plan, records[:-1]))
