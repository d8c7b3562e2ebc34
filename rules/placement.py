"""Which actor node hosts which member shard. Pure: the directory feeds it the nodes it knows
and carries out the moves it returns.

Shards are spread round-robin over the member-hosting nodes present when they are first
placed (the leader first, then by name), so members and their calls spread with them. A lost
node's shards go to the surviving nodes holding the fewest shards. A node that joins later is
given shards only when one needs a new home: moving a live shard would cut its members' calls.
"""


def spread(shard_count, nodes):
    """{shard index: node} for a first placement over `nodes` (in preference order)."""
    if not nodes:
        raise ValueError("no node hosts members: start a node without --no-members")
    return {index: nodes[index % len(nodes)] for index in range(shard_count)}


def rehome(placement, lost_node, nodes):
    """The moves {shard index: new node} for the shards that lived on `lost_node`.

    `nodes` are the surviving member-hosting nodes in preference order; each move goes to
    the one holding the fewest shards at that moment (ties: the earlier node)."""
    if not nodes:
        return {}
    held = {node: 0 for node in nodes}
    for node in placement.values():
        if node in held:
            held[node] += 1
    moves = {}
    for index in sorted(i for i, node in placement.items() if node == lost_node):
        target = min(nodes, key=lambda node: (held[node], nodes.index(node)))
        held[target] += 1
        moves[index] = target
    return moves
