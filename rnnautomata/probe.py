"""Hidden states of a sequence model for every node of a prefix tree.

Step 1 of DESIGN.md's "Extraction, precisely": enumerate the strings up to a depth (or all prefixes
of a sample of strings) as a prefix tree, then run the network once per tree node, reusing the
parent's hidden state, so probing costs O(nodes) steps rather than O(nodes x depth). A causal model
without a one-step API (a transformer) is probed from one pass over the tree's leaves instead.

Example
-------
>>> tree = prefix_tree(n_symbols=2, depth=2)
>>> tree.n_nodes, [tree.string(i) for i in range(tree.n_nodes)]
(7, [(), (0,), (1,), (0, 0), (0, 1), (1, 0), (1, 1)])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rnnautomata.models.base import SequenceModel, is_recurrent

__all__ = ["LSTM_STATES", "METRICS", "PrefixTree", "ProbeResult", "StateView", "hook_of_state", "leaf_below",
           "prefix_tree", "prefix_tree_from_strings", "probe", "state_columns", "state_view"]

#: which part of an LSTM's state the probe returns: its output h (the default), its cell c, or both
LSTM_STATES = ("h", "c", "hc")
#: how states are compared when merged: as they are, or by direction (each scaled to unit length)
METRICS = ("euclidean", "cosine")
#: residual-stream hooks a transformer's probed state may be read from, besides "final"
_RESIDUAL_HOOKS = ("resid_pre", "resid_mid", "resid_post")


def state_columns(model, lstm_state: str = "h") -> slice:
    """The columns of `model`'s packed state that the probe returns.

    For an LSTM (state = [h, c]) the default is h alone, the part the readout sees. Evidence
    (docs/guide.md, "Which LSTM state"): on 12 held-out random machines, consistent merging gave
    the true machine from h on 12 of 12 networks, from c or [h, c] on 11; the ε rule on 9 from h
    but 4 from c or [h, c] — the cell carries magnitudes the output never reads, which spread
    the states of equivalent prefixes apart. Other models: every column.
    """
    if lstm_state not in LSTM_STATES:
        raise ValueError(f"lstm_state must be one of {', '.join(LSTM_STATES)}, got {lstm_state!r}")
    if getattr(model, "arch", None) != "lstm" or lstm_state == "hc":
        return slice(None)
    hidden = model.hidden_size
    return slice(0, hidden) if lstm_state == "h" else slice(hidden, 2 * hidden)


@dataclass(frozen=True, eq=False)
class PrefixTree:
    """A prefix tree in BFS order: node 0 is the empty prefix; nodes are sorted by length, then
    lexicographically by symbol id.

    Attributes
    ----------
    parent : np.ndarray
        (N,) int64 parent node of each node; -1 for the root.
    symbol : np.ndarray
        (N,) int64 last symbol of each node's string; -1 for the root.
    depth : np.ndarray
        (N,) int64 length of each node's string.
    children : np.ndarray
        (N, n_symbols) int64 child node under each symbol; -1 where the child is not in the tree
        (beyond the maximum depth, or not sampled).
    n_symbols : int
        Alphabet size.
    max_depth : int
        Length of the longest string in the tree.
    """

    parent: np.ndarray
    symbol: np.ndarray
    depth: np.ndarray
    children: np.ndarray
    n_symbols: int
    max_depth: int

    @property
    def n_nodes(self) -> int:
        """Number of nodes, the empty prefix included."""
        return int(self.parent.shape[0])

    def level(self, depth: int) -> slice:
        """The slice of node ids whose strings have length `depth` (contiguous in BFS order)."""
        start, stop = np.searchsorted(self.depth, [depth, depth + 1])
        return slice(int(start), int(stop))

    def string(self, node: int) -> tuple[int, ...]:
        """The string of symbol ids that leads from the root to `node`."""
        symbols = []
        while node > 0:
            symbols.append(int(self.symbol[node]))
            node = int(self.parent[node])
        return tuple(reversed(symbols))

    def symbols_matrix(self) -> np.ndarray:
        """(N, max_depth) int64 matrix of every node's string, padded with -1 after its end."""
        matrix = np.full((self.n_nodes, self.max_depth), -1, dtype=np.int64)
        for d in range(1, self.max_depth + 1):
            nodes = self.level(d)
            matrix[nodes, : d - 1] = matrix[self.parent[nodes], : d - 1]
            matrix[nodes, d - 1] = self.symbol[nodes]
        return matrix


def _check_n_symbols(n_symbols: int) -> None:
    if n_symbols < 1:
        raise ValueError(f"n_symbols must be at least 1, got {n_symbols}")


def prefix_tree(n_symbols: int, depth: int) -> PrefixTree:
    """Every string over `n_symbols` symbols of length at most `depth`, as a prefix tree.

    Vectorised per level: the node at position j of level d spells j in base `n_symbols`.

    Parameters
    ----------
    n_symbols : int
        Alphabet size (symbol ids 0 .. n_symbols - 1).
    depth : int
        Maximum string length (0 gives the root alone).

    Returns
    -------
    PrefixTree
        With sum_{d<=depth} n_symbols**d nodes.

    Raises
    ------
    ValueError
        If `n_symbols` < 1 or `depth` < 0.
    """
    _check_n_symbols(n_symbols)
    if depth < 0:
        raise ValueError(f"depth must be non-negative, got {depth}")
    sizes = np.array([n_symbols**d for d in range(depth + 1)], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])  # (depth + 2,)
    n_nodes = int(offsets[-1])
    parent = np.full(n_nodes, -1, dtype=np.int64)
    symbol = np.full(n_nodes, -1, dtype=np.int64)
    depths = np.repeat(np.arange(depth + 1, dtype=np.int64), sizes)  # (N,)
    children = np.full((n_nodes, n_symbols), -1, dtype=np.int64)
    for d in range(1, depth + 1):
        j = np.arange(sizes[d], dtype=np.int64)  # position within level d
        parent[offsets[d] : offsets[d + 1]] = offsets[d - 1] + j // n_symbols
        symbol[offsets[d] : offsets[d + 1]] = j % n_symbols
        children[offsets[d - 1] : offsets[d]] = (offsets[d] + j).reshape(-1, n_symbols)
    return PrefixTree(parent, symbol, depths, children, n_symbols, depth)


def prefix_tree_from_strings(strings: Iterable[Sequence[int]], n_symbols: int) -> PrefixTree:
    """All prefixes of the given strings (deduplicated, the empty one included) as a prefix tree.

    The ordering is the same as `prefix_tree`'s: by length, then lexicographically.

    Parameters
    ----------
    strings : iterable of sequences of int
        Strings of symbol ids, of any lengths (a (B, T) integer array works too).
    n_symbols : int
        Alphabet size.

    Returns
    -------
    PrefixTree

    Raises
    ------
    ValueError
        If a symbol id lies outside 0 .. n_symbols - 1.
    """
    _check_n_symbols(n_symbols)
    if isinstance(strings, np.ndarray) and strings.ndim == 2:  # equal lengths: no Python loop
        padded = strings.astype(np.int64)  # (B, T)
        lengths = np.full(len(padded), padded.shape[1], dtype=np.int64)  # (B,)
    else:
        rows = [np.asarray(s, dtype=np.int64).reshape(-1) for s in strings]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)  # (B,)
        padded = np.full((len(rows), int(lengths.max()) if len(rows) else 0), -1, np.int64)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
    max_depth = padded.shape[1]
    valid = np.arange(max_depth)[None, :] < lengths[:, None]  # (B, T)
    if np.any(padded[valid] < 0) or np.any(padded[valid] >= n_symbols):
        raise ValueError(f"symbol ids must lie in 0..{n_symbols - 1}")

    parents, symbols, depths = [np.array([-1])], [np.array([-1])], [np.array([0])]
    node_of_string = np.zeros(len(padded), dtype=np.int64)  # (B,) node of each string's prefix
    n_nodes = 1
    for d in range(1, max_depth + 1):
        active = lengths >= d  # (B,)
        # Parents of level d are numbered in lexicographic order, so sorting (parent, symbol)
        # keys orders level d lexicographically too.
        keys = node_of_string[active] * n_symbols + padded[active, d - 1]  # (B_active,)
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        parents.append(unique_keys // n_symbols)
        symbols.append(unique_keys % n_symbols)
        depths.append(np.full(len(unique_keys), d))
        node_of_string[active] = n_nodes + inverse
        n_nodes += len(unique_keys)
    parent = np.concatenate(parents).astype(np.int64)
    symbol = np.concatenate(symbols).astype(np.int64)
    children = np.full((n_nodes, n_symbols), -1, dtype=np.int64)
    children[parent[1:], symbol[1:]] = np.arange(1, n_nodes)
    depth = np.concatenate(depths).astype(np.int64)
    return PrefixTree(parent, symbol, depth, children, n_symbols, max_depth)


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """The network's hidden state and output class after every prefix of a tree.

    Attributes
    ----------
    tree : PrefixTree
    states : np.ndarray
        (N, S) float32 state after each node's string (row 0: the initial state).
    outputs : np.ndarray
        (N,) int64 network output class, `readout(state).argmax(-1)`, after each node's string.
    """

    tree: PrefixTree
    states: np.ndarray
    outputs: np.ndarray


def probe(
    model: torch.nn.Module, tree: PrefixTree, device: str | torch.device = "cpu",
    batch_size: int = 65536, lstm_state: str = "h", incremental: bool | None = None,
) -> ProbeResult:
    """The model's state and output class after every node of `tree`.

    Two exact ways, chosen by `incremental` (default: the first when the model has ``step``):

    - **incremental** (recurrent models): one batched ``model.step`` per level and batch, each
      node's state computed from its parent's, so the cost is one step per node;
    - **one pass** (any causal model, docs/contracts.md): ``model.prefix_states`` over the tree's
      leaves, grouped by length; a node's state is read at its own length from the row of one leaf
      below it (position t sees only symbols ≤ t, so this is the node's own state).

    The model is put in eval mode for the call (and restored afterwards) and run under
    `torch.no_grad`.

    Parameters
    ----------
    model : torch.nn.Module
        Follows the sequence-model contract (``prefix_states``, ``readout``) or the one-step API
        (``initial_state``, ``step``, ``readout``) of docs/contracts.md, and already lives on `device`.
    tree : PrefixTree
    device : str or torch.device
        Where the model runs; states are gathered back to CPU memory.
    batch_size : int
        Most nodes stepped at once (incremental), or most leaf positions run at once (one pass).
    lstm_state : str
        For an LSTM, which part of the state to return: "h" (default), "c" or "hc"
        (:func:`state_columns`). Other models return their whole state.
    incremental : bool or None
        Force one way (True needs ``step``; False needs ``prefix_states``); None chooses.

    Returns
    -------
    ProbeResult
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if incremental is None:
        incremental = is_recurrent(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run = _probe_steps if incremental else _probe_one_pass
            states, outputs = run(model, tree, device, batch_size)
    finally:
        model.train(was_training)
    columns = state_columns(model, lstm_state)
    return ProbeResult(tree, np.ascontiguousarray(states.numpy()[:, columns]), outputs.numpy())


def _probe_steps(model, tree: PrefixTree, device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """States (N, S) and output classes (N,) by one ``step`` per node, level by level."""
    root = model.initial_state(1).to(device=device)  # (1, S)
    states = torch.empty(tree.n_nodes, root.shape[-1], dtype=torch.float32)  # (N, S)
    outputs = torch.empty(tree.n_nodes, dtype=torch.int64)  # (N,)
    states[0] = root[0].float().cpu()
    outputs[0] = model.readout(root).argmax(-1)[0].cpu()
    parent = torch.from_numpy(tree.parent)
    symbol = torch.from_numpy(tree.symbol)
    for d in range(1, tree.max_depth + 1):
        level = tree.level(d)
        for start in range(level.start, level.stop, batch_size):
            nodes = slice(start, min(start + batch_size, level.stop))
            prev = states[parent[nodes]].to(device)  # (B, S)
            sym = symbol[nodes].to(device)  # (B,)
            new = model.step(prev, sym)  # (B, S)
            states[nodes] = new.float().cpu()
            outputs[nodes] = model.readout(new).argmax(-1).cpu()  # (B,)
    return states, outputs


def leaf_below(tree: PrefixTree) -> np.ndarray:
    """(N,) int64: for each node, a leaf of `tree` whose string starts with the node's string
    (the node itself when it is a leaf; otherwise the leaf below its lowest-numbered child)."""
    below = np.arange(tree.n_nodes, dtype=np.int64)  # (N,)
    for d in range(tree.max_depth - 1, -1, -1):
        nodes = np.arange(tree.level(d).start, tree.level(d).stop)  # (n_d,)
        kids = tree.children[nodes]  # (n_d, A)
        has = kids >= 0
        inner = has.any(1)
        first = kids[inner, has[inner].argmax(1)]  # (n_inner,) lowest-numbered existing child
        below[nodes[inner]] = below[first]
    return below


def _probe_one_pass(model, tree: PrefixTree, device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """States (N, S) and output classes (N,) from ``prefix_states`` over the leaves (causal models)."""
    below = leaf_below(tree)  # (N,)
    matrix = tree.symbols_matrix()  # (N, max_depth)
    leaves = np.unique(below)  # (L,)
    viewed = isinstance(model, StateView)  # states from a hook, outputs from the model's logits
    states = outputs = None
    for length in np.unique(tree.depth[leaves]):
        group = leaves[tree.depth[leaves] == length]  # leaves of this length
        rows = max(1, batch_size // (int(length) + 1))
        for start in range(0, len(group), rows):
            chunk = group[start : start + rows]  # (b,)
            symbols = torch.as_tensor(matrix[chunk, :length], device=device)  # (b, length)
            if viewed:
                prefix, logits = model.states_and_logits(symbols)  # (b, length + 1, S), (b, length + 1, O)
            else:
                prefix = model.prefix_states(symbols)  # (b, length + 1, S)
            if states is None:
                states = torch.empty(tree.n_nodes, prefix.shape[-1], dtype=torch.float32)  # (N, S)
                outputs = torch.empty(tree.n_nodes, dtype=torch.int64)  # (N,)
            nodes = np.flatnonzero(np.isin(below, chunk))  # every node read from this chunk
            row = torch.as_tensor(np.searchsorted(chunk, below[nodes]), device=device)  # (n,) chunk is sorted
            pos = torch.as_tensor(tree.depth[nodes], device=device)  # (n,)
            picked = prefix[row, pos]  # (n, S)
            states[nodes] = picked.float().cpu()
            out = logits[row, pos] if viewed else model.readout(picked)  # (n, O)
            outputs[nodes] = out.argmax(-1).cpu()  # (n,)
    return states, outputs


def hook_of_state(state: str, n_layers: int) -> str:
    """The transformer hook point that ``probe.state`` names.

    ``"final"`` is ``ln_final.hook_normalized`` (what the unembedding reads, the default);
    ``"resid_post.{l}"`` (also ``resid_pre`` / ``resid_mid``) is ``blocks.{l}.hook_resid_post``,
    the residual stream of block l (0-based) before any final LayerNorm.

    Raises
    ------
    ValueError
        If `state` is not one of these forms or names a block the model does not have.
    """
    if state == "final":
        return "ln_final.hook_normalized"
    kind, _, layer = state.partition(".")
    if kind not in _RESIDUAL_HOOKS or not layer.isdigit():
        raise ValueError(f"probe.state = {state!r} is not allowed; choose final or "
                         f"{' / '.join(_RESIDUAL_HOOKS)}.<layer>, e.g. resid_post.0")
    if int(layer) >= n_layers:
        raise ValueError(f"probe.state = {state!r} names block {int(layer)} but the model has {n_layers} "
                         f"(blocks 0..{n_layers - 1}, model.transformer.n_layers = {n_layers})")
    return f"blocks.{int(layer)}.hook_{kind}"


class StateView(SequenceModel):
    """A causal model whose probed state is another representation; its outputs are unchanged.

    ``prefix_states`` gives the tensor at hook point `hook` (via ``run_with_cache``), minus
    `position_mean[t]` at position t (positions beyond the table use its last row), scaled to unit
    length when `unit`; ``prefix_outputs`` (and so ``forward``, the network's outputs that
    extraction votes with and checks against) is the wrapped model's own. :func:`probe` reads the
    view's states and the model's output classes from one pass (``states_and_logits``).

    Parameters
    ----------
    model : a causal model with ``run_with_cache`` (models/transformer.py).
    hook : hook point name, e.g. ``"blocks.0.hook_resid_post"``.
    position_mean : (L + 1, S) tensor or None: subtracted at positions 0..L.
    unit : divide every state by its Euclidean norm (merging by direction).
    """

    def __init__(self, model, hook: str = "ln_final.hook_normalized", position_mean: torch.Tensor | None = None,
                 unit: bool = False) -> None:
        super().__init__()
        self.model, self.hook, self.unit = model, hook, unit
        self.position_mean = position_mean
        self.n_symbols, self.n_outputs, self.state_size = model.n_symbols, model.n_outputs, model.state_size
        self.arch = getattr(model, "arch", None)

    def _view(self, states: torch.Tensor) -> torch.Tensor:
        if self.position_mean is not None:
            mean = self.position_mean.to(states)  # (L + 1, S)
            rows = torch.arange(states.shape[1], device=states.device).clamp(max=len(mean) - 1)  # (P,)
            states = states - mean[rows]  # (B, P, S)
        if self.unit:
            states = states / states.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (B, P, S)
        return states

    def states_and_logits(self, symbols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The viewed states (B, T + 1, S) and the model's logits (B, T + 1, O), from one pass."""
        logits, cache = self.model.run_with_cache(symbols)  # (B, P, O), {name: tensor}
        return self._view(cache[self.hook]), logits

    def prefix_states(self, symbols: torch.Tensor) -> torch.Tensor:
        return self.states_and_logits(symbols)[0]  # (B, T + 1, S)

    def prefix_outputs(self, symbols: torch.Tensor) -> torch.Tensor:
        return self.model.prefix_outputs(symbols)  # (B, T + 1, O)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        raise TypeError("a StateView's states are not the model's readout input; use prefix_outputs")


def state_view(model, tree: PrefixTree, state: str = "final", remove_position: bool = False,
               metric: str = "euclidean", device: str | torch.device = "cpu"):
    """`model` seen through the probe options of docs/transformers.md ("Which state").

    - `state`: the hook read (:func:`hook_of_state`);
    - `remove_position`: subtract from each state the mean state of the prefixes of its length in
      `tree` (strings longer than the tree's deepest level use that level's mean; the empty prefix,
      alone at length 0, becomes the zero vector);
    - `metric = "cosine"`: scale every state (after removing position) to unit length, so that
      Euclidean ε and nearest-neighbour merging compare directions (‖u − v‖² = 2 − 2 cos).

    Returns `model` itself for the defaults (every model, recurrent ones included), else a
    :class:`StateView` (transformers only: the model needs ``run_with_cache``).

    Raises
    ------
    ValueError
        For an unknown metric or state, or options on a model without ``run_with_cache``.
    """
    if metric not in METRICS:
        raise ValueError(f"probe.metric = {metric!r} is not allowed; choose one of: {', '.join(METRICS)}")
    if state == "final" and not remove_position and metric == "euclidean":
        return model
    if not callable(getattr(model, "run_with_cache", None)):
        raise ValueError("probe.state, probe.remove_position and probe.metric apply to transformers only")
    hook = hook_of_state(state, len(model.blocks))
    mean = None
    if remove_position:
        raw = probe(StateView(model, hook), tree, device=device).states  # (N, S)
        mean = torch.stack([torch.as_tensor(raw[tree.level(d)]).mean(0) for d in range(tree.max_depth + 1)])  # (D + 1, S)
    return StateView(model, hook, mean, unit=metric == "cosine")
