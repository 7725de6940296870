"""Congruence: whether a partition of the probed prefixes is closed under reading one more symbol.

A recurrent network is a map ``h' = f(h, a)``, so prefixes whose states coincide move, under one
symbol, to states that coincide. A transformer is not a recurrent map: two prefixes whose states lie
in one cluster may have children in different clusters, and the extracted transition (the majority
cluster of the children, :func:`rnnautomata.extract.extract_machine`) then hides a disagreement.

Definition
----------
Take a prefix tree and a partition (``labels``) of its nodes. For a cluster ``c`` and a symbol ``a``,
the *children* of ``(c, a)`` are the in-tree children under ``a`` of the members of ``c``. The pair
counts when it has at least one child, and is *congruent* when all of its children lie in one
cluster. Then

- ``fraction`` (unweighted, the ``congruence`` of dynamics.json) = congruent pairs / counted pairs;
- ``edge_fraction`` (weighted by children) = tree edges whose pair is congruent / tree edges.

Both are 1.0 when no pair counts. A cluster with a single member, or whose members have a single
child under ``a`` between them, is congruent trivially, so a partition into singletons (the *tree*
phase) has congruence 1.0: read congruence together with the state count.

Example
-------
>>> from rnnautomata.probe import prefix_tree
>>> tree = prefix_tree(2, 2)            # "", 0, 1, 00, 01, 10, 11
>>> congruence(tree, [0, 1, 1, 2, 3, 2, 2]).fraction   # (1, 0) -> {2}, (1, 1) -> {3, 2}
0.75
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnautomata.probe import PrefixTree

__all__ = ["Congruence", "congruence"]


@dataclass(frozen=True)
class Congruence:
    """How closed a partition is under one more symbol (module docstring).

    Attributes
    ----------
    fraction : float
        Congruent (cluster, symbol) pairs / pairs with at least one in-tree child.
    edge_fraction : float
        Tree edges whose (cluster, symbol) pair is congruent / tree edges.
    n_pairs : int
        (cluster, symbol) pairs with at least one in-tree child.
    n_congruent : int
        Those whose children all lie in one cluster.
    """

    fraction: float
    edge_fraction: float
    n_pairs: int
    n_congruent: int


def congruence(tree: PrefixTree, labels) -> Congruence:
    """The congruence of the partition ``labels`` of ``tree``'s nodes.

    Parameters
    ----------
    tree : PrefixTree
    labels : array_like of int
        (N,) cluster of every tree node, any non-negative numbering.

    Returns
    -------
    Congruence

    Raises
    ------
    ValueError
        If ``labels`` does not have one entry per node, or holds a negative id.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)  # (N,)
    if labels.shape[0] != tree.n_nodes:
        raise ValueError(f"labels has {labels.shape[0]} entries but the tree has {tree.n_nodes} nodes")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative cluster ids")
    n_labels = int(labels.max()) + 1 if labels.size else 0
    n_pairs = n_congruent = n_edges = congruent_edges = 0
    for a in range(tree.n_symbols):
        child = tree.children[:, a]  # (N,)
        has = child >= 0
        pair = labels[has]  # (E_a,) cluster of each parent with a child under a
        target = labels[child[has]]  # (E_a,) cluster of that child
        uniq_pair, edges_per_pair = np.unique(pair, return_counts=True)  # (P_a,)
        n_targets = np.bincount(np.unique(pair * n_labels + target) // n_labels, minlength=n_labels)[uniq_pair]  # (P_a,)
        ok = n_targets == 1  # (P_a,)
        n_pairs += len(uniq_pair)
        n_congruent += int(ok.sum())
        n_edges += int(has.sum())
        congruent_edges += int(edges_per_pair[ok].sum())
    return Congruence(
        fraction=n_congruent / n_pairs if n_pairs else 1.0,
        edge_fraction=congruent_edges / n_edges if n_edges else 1.0,
        n_pairs=n_pairs,
        n_congruent=n_congruent,
    )
