"""Time Machine.minimize on binary prefix trees against AALpy and automata-lib.

The trees are what extraction produces: every string up to a depth, one state per string, outputs
given by a task (streaming parity, or random outputs). Two variants of each tree are timed:

- ``partial``: leaves' transitions are open (-1), our native input;
- ``complete``: leaves go to an explicit rejecting sink, so that the baselines (which need complete
  acceptors) solve the same problem; the ratios compare this variant.

Baselines run in a child process with a time limit (``--baseline-timeout``); one that is not
installed, or that runs past the limit, is reported as skipped. Conversion into a baseline's own
objects is not timed.

Usage::

    python benchmarks/bench_minimize.py                 # depths 10, 14 (baselines) and 19
    python benchmarks/bench_minimize.py --outputs random --repeats 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time
from collections.abc import Callable

import numpy as np

from rnnautomata.automata import Machine

ACCEPTOR = ("reject", "accept")


def prefix_tree(depth: int, outputs: str, rng: np.random.Generator, complete: bool) -> Machine:
    """Binary prefix tree of all strings up to ``depth`` (heap numbering: children 2i+1, 2i+2).

    Parameters
    ----------
    depth : int
        Longest string; the tree has 2 ** (depth + 1) - 1 nodes (+1 sink when ``complete``).
    outputs : {"parity", "random"}
        Accept strings with an odd number of 1s, or accept each node with probability 1/2.
    rng : np.random.Generator
        Used for random outputs.
    complete : bool
        Send the leaves' transitions to a rejecting sink instead of leaving them open.

    Returns
    -------
    Machine
    """
    n_nodes = 2 ** (depth + 1) - 1
    nodes = np.arange(n_nodes, dtype=np.int64)
    transitions = np.stack([2 * nodes + 1, 2 * nodes + 2], axis=1)  # (N, 2)
    if outputs == "parity":
        accept = np.zeros(n_nodes, dtype=np.int64)  # (N,)
        for level in range(1, depth + 1):
            level_nodes = np.arange(2 ** level - 1, 2 ** (level + 1) - 1)
            accept[level_nodes] = accept[(level_nodes - 1) // 2] ^ ((level_nodes - 1) % 2)
    else:
        accept = rng.integers(0, 2, size=n_nodes)
    if complete:
        transitions[transitions >= n_nodes] = n_nodes
        transitions = np.vstack([transitions, [[n_nodes, n_nodes]]])  # (N + 1, 2) sink loops
        accept = np.append(accept, 0)
    else:
        transitions[transitions >= n_nodes] = -1
    return Machine(("0", "1"), ACCEPTOR, transitions, accept)


def best_time(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - began)
    return best, result


def _aalpy_child(machine: Machine, queue: mp.Queue) -> None:
    from rnnautomata.interop import to_aalpy_dfa

    dfa = to_aalpy_dfa(machine)
    began = time.perf_counter()
    dfa.minimize()
    queue.put((time.perf_counter() - began, len(dfa.states)))


def _automata_lib_child(machine: Machine, queue: mp.Queue) -> None:
    from rnnautomata.interop import to_automata_lib_dfa

    dfa = to_automata_lib_dfa(machine)
    began = time.perf_counter()
    minimal = dfa.minify()
    queue.put((time.perf_counter() - began, len(minimal.states)))


def run_baseline(child: Callable, module: str, machine: Machine, timeout: float) -> tuple[str, float | None]:
    """Run one baseline in a child process; ('ok'|'absent'|'timeout'|'failed', seconds)."""
    try:
        __import__(module)
    except ImportError:
        return "absent", None
    queue: mp.Queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=child, args=(machine, queue))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join()
        return "timeout", None
    if queue.empty():
        return "failed", None
    seconds, _ = queue.get()
    return "ok", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 14, 19],
                        help="tree depths (nodes = 2**(depth+1) - 1)")
    parser.add_argument("--baseline-depths", type=int, nargs="*", default=[10, 14],
                        help="depths on which the baselines also run")
    parser.add_argument("--outputs", choices=["parity", "random"], default="parity")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (ours)")
    parser.add_argument("--baseline-timeout", type=float, default=60.0, help="seconds per baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    print(f"# Machine.minimize vs baselines; outputs={args.outputs}; {platform.processor() or platform.machine()}, "
          f"{mp.cpu_count()} cores; ours = best of {args.repeats}")
    header = (f"{'depth':>5} {'states':>9} {'variant':>8} {'minimal':>8} {'ours s':>9} "
              f"{'automata-lib s':>15} {'ratio':>8} {'aalpy s':>9} {'ratio':>8}")
    print(header)
    print("-" * len(header))
    notes = []
    for depth in args.depths:
        for complete in (False, True):
            machine = prefix_tree(depth, args.outputs, rng, complete)
            seconds, minimal = best_time(machine.minimize, args.repeats)
            cells = [f"{depth:>5} {machine.n_states:>9} {'complete' if complete else 'partial':>8} "
                     f"{minimal.n_states:>8} {seconds:>9.4f}"]
            for child, module, name in ((_automata_lib_child, "automata.fa.dfa", "automata-lib"),
                                        (_aalpy_child, "aalpy.automata", "aalpy")):
                width = 15 if name == "automata-lib" else 9
                if not complete or depth not in args.baseline_depths:
                    cells.append(f"{'':>{width}} {'':>8}")
                    continue
                status, baseline = run_baseline(child, module, machine, args.baseline_timeout)
                if status != "ok":
                    cells.append(f"{status:>{width}} {'':>8}")
                    notes.append(f"{name} at depth {depth}: {status}"
                                 + (f" (> {args.baseline_timeout:.0f} s)" if status == "timeout" else ""))
                else:
                    cells.append(f"{baseline:>{width}.4f} {baseline / seconds:>7.1f}x")
            print(" ".join(cells), flush=True)
    print("ratio = baseline time / our time (higher = ours faster); conversion not timed")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
