"""What "only the node order changed" means, shared by the checking scripts.

onnx-memsched may permute the nodes of the top-level graph and of every
control-flow body (If branches, Loop and Scan bodies, at any depth), and
nothing else. `canonical_node` serializes a node with the nodes of its bodies
in one canonical order, so two files that differ only in node order have the
same multiset of canonical top-level nodes.
"""

import onnx


def canonical_copy(node):
    """A copy of `node` whose bodies' nodes are sorted by their canonical
    serialization, at any depth."""
    n = onnx.NodeProto()
    n.CopyFrom(node)
    for a in n.attribute:
        if a.HasField("g"):
            inner = sorted((canonical_copy(x) for x in a.g.node), key=lambda x: x.SerializeToString(deterministic=True))
            del a.g.node[:]
            a.g.node.extend(inner)
    return n


def canonical_node(node):
    """`node` serialized (deterministically) with its bodies' nodes in canonical order."""
    return canonical_copy(node).SerializeToString(deterministic=True)
