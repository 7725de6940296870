"""Time probe + merge + extract on ~10^6 prefixes, and our single linkage against scikit-learn's.

Run: .venv/bin/python benchmarks/bench_extract.py [--depth 19] [--sklearn-points 20000]

The test model is an Elman-like tanh RNN with H = 100 and one recurrent matrix per symbol
(a second-order RNN), hand-set to compute streaming parity: a strong component along a unit
vector v holds the parity (symbol 1 flips its sign), and a weak random contraction carries a
fading memory of recent symbols. Deep prefixes therefore converge to two tight clouds while
shallow ones stay apart, the structure of a network part-way through merging.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from rnnautomata.extract import extract_machine
from rnnautomata.merge import LeaderMerger, SingleLinkageMerger, epsilon_from_states
from rnnautomata.probe import prefix_tree, probe


class ParityElman(nn.Module):
    """h' = tanh(W_x h + b_x): W_0 keeps the sign along v, W_1 flips it; the rest contracts."""

    n_symbols, n_outputs = 2, 2

    def __init__(self, hidden_size: int = 100, memory: float = 0.5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden_size = self.state_size = hidden_size
        v = torch.randn(hidden_size, generator=g)
        v = v / v.norm()  # (H,)
        parity = 3.0 * torch.outer(v, v)  # (H, H)
        noise = torch.randn(2, hidden_size, hidden_size, generator=g) / hidden_size**0.5
        self.W = nn.Parameter(torch.stack([parity, -parity]) + memory * noise)  # (2, H, H)
        self.b = nn.Parameter(0.3 * torch.randn(2, hidden_size, generator=g))  # (2, H)
        self.h0 = nn.Parameter(v.clone())  # (H,)
        self.V = nn.Parameter(torch.stack([v, -v], dim=1))  # (H, 2)

    def initial_state(self, batch_size):
        return self.h0.expand(batch_size, -1).clone()  # (B, H)

    def step(self, state, symbols):
        W = self.W[symbols]  # (B, H, H)
        return torch.tanh(torch.bmm(W, state.unsqueeze(-1)).squeeze(-1) + self.b[symbols])  # (B, H)

    def readout(self, state):
        return state @ self.V  # (B, 2)


class FastParityElman(ParityElman):
    """The same map: one matrix product against both symbols' matrices, then a per-row pick."""

    def step(self, state, symbols):
        both = (state @ self.W.reshape(-1, self.hidden_size).T).view(len(state), 2, -1)  # (B, 2, H)
        pre = torch.where((symbols == 1)[:, None], both[:, 1], both[:, 0])  # (B, H)
        return torch.tanh(pre + self.b[symbols])  # (B, H)


def timed(label, fn):
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<34s} {elapsed:7.2f} s")
    return value, elapsed


def canonical(labels):
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=19)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--sklearn-points", type=int, default=20000)
    parser.add_argument("--memory", type=float, default=0.5,
                        help="strength of the fading memory; larger = looser, more clusters")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model = FastParityElman(memory=args.memory)

    tree, t_tree = timed("prefix_tree", lambda: prefix_tree(2, args.depth))
    print(f"depth {args.depth}: {tree.n_nodes:,} prefixes, H = {model.hidden_size}, "
          f"torch threads = {torch.get_num_threads()}")
    result, t_probe = timed("probe", lambda: probe(model, tree))
    epsilon, t_eps = timed("epsilon_from_states",
                           lambda: epsilon_from_states(result.states, args.scale))
    print(f"  epsilon = {epsilon:.4g}")
    totals = {}
    mergers = {"leader": LeaderMerger(epsilon), "single_linkage": SingleLinkageMerger(epsilon)}
    for name, merger in mergers.items():
        fitted, t_merge = timed(f"merge ({name})", lambda: merger.fit(result.states))
        extraction, t_extract = timed("extract_machine", lambda: extract_machine(
            result, fitted.labels_, ("0", "1"), ("even", "odd")))
        minimal = extraction.machine.minimize()
        extra = f", {fitted.n_cells_:,} grid cells" if name == "single_linkage" else ""
        print(f"  -> {extraction.n_states:,} states{extra}, finite = {extraction.finite}, "
              f"minimized: {minimal.n_states} states")
        totals[name] = t_tree + t_probe + t_eps + t_merge + t_extract
    for name, total in totals.items():
        print(f"total probe + merge + extract with {name}: {total:.2f} s (goal <= 10 s)")

    # Against scikit-learn's single linkage (O(N^2) time) on a subsample of the same states.
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(0)
    for n in sorted({min(5000, args.sklearn_points, tree.n_nodes), min(args.sklearn_points, tree.n_nodes)}):
        rows = np.sort(rng.choice(tree.n_nodes, size=n, replace=False))
        X = result.states[rows].astype(np.float64)
        ours, t_ours = timed(f"ours, single linkage, N = {n:,}",
                             lambda: SingleLinkageMerger(epsilon).fit(X))
        sk = AgglomerativeClustering(n_clusters=None, distance_threshold=epsilon, linkage="single")
        theirs, t_sk = timed(f"sklearn single linkage, N = {n:,}", lambda: sk.fit(X))
        same = np.array_equal(ours.labels_, canonical(theirs.labels_))
        print(f"  clusters: ours {ours.n_clusters_}, sklearn {theirs.n_clusters_}; "
              f"same partition: {same}; sklearn / ours = {t_sk / t_ours:.0f}x")


if __name__ == "__main__":
    main()
