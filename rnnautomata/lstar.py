"""Learn a Moore machine from a trained network with AALpy's L* (optional: ``pip install aalpy``).

The network is the system under learning (SUL): a membership query runs it over a string and
answers with its output label after every symbol (and, for the empty string, after none). The
equivalence oracle is one of AALpy's testing oracles, querying the network the same way; the
learned hypothesis comes back as a :class:`~rnnautomata.automata.Machine`, so it can be compared
with the machine extracted from the hidden states (:meth:`Machine.equivalent`) and with the task.

Example::

    result = learn_machine(model, task.alphabet, task.outputs)  # random words of length 5-30
    result.machine.equivalent(extracted.minimize())
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnautomata.automata import Machine
from rnnautomata.errors import RnnAutomataError
from rnnautomata.models.base import is_recurrent

__all__ = ["network_sul", "LStarResult", "learn_machine", "ORACLES", "CrossCheck", "cross_check"]

#: equivalence oracles by name -> AALpy class name and its keyword arguments
ORACLES = {
    "random_walk": ("RandomWalkEqOracle", {"num_steps": 20_000, "reset_after_cex": True, "reset_prob": 0.05}),
    "random_word": ("RandomWordEqOracle", {"num_walks": 2_000, "min_walk_len": 5, "max_walk_len": 30}),
    "state_prefix": ("StatePrefixEqOracle", {"walks_per_state": 200, "walk_len": 20}),
    "w_method": ("WMethodEqOracle", {"max_number_of_states": None}),
}


def _aalpy():
    try:
        import aalpy  # noqa: F401
        from aalpy import base, learning_algs, oracles
    except ImportError:
        raise ImportError("AALpy is not installed; run `pip install rnnautomata[interop]`") from None
    return base, learning_algs, oracles


def network_sul(
    model: torch.nn.Module,
    alphabet: Sequence[str],
    outputs: Sequence[str],
    device: str | torch.device = "cpu",
    max_cache: int = 100_000,
) -> Any:
    """An AALpy system under learning (an ``aalpy.base.SUL``) backed by a recurrent network.

    ``step(letter)`` feeds one symbol and returns the network's output label; ``step(None)``
    (AALpy's query of the empty string) returns the label before any symbol. Hidden states are
    cached per queried prefix, so a query that extends an earlier one costs one network step per
    new symbol.

    Parameters
    ----------
    model : the trained network (docs/contracts.md one-step API), already on ``device``.
    alphabet : input symbol labels; the network's symbol ids are their indices.
    outputs : output labels; the network's classes index them.
    device : where the network runs.
    max_cache : most cached prefixes (the cache restarts when full).

    Raises
    ------
    ImportError : if AALpy is not installed.
    """
    return _sul_class()(model, alphabet, outputs, device, max_cache)


_SUL_CLASS = None


class _OutOfTime(Exception):
    """Raised inside a membership query once L*'s hard time limit has passed."""


def _sul_class() -> type:
    """Build the SUL subclass at first use, so importing this module does not need AALpy."""
    global _SUL_CLASS
    if _SUL_CLASS is not None:
        return _SUL_CLASS
    SUL = _aalpy()[0].SUL

    class NetworkSUL(SUL):
        def __init__(self, model, alphabet, outputs, device, max_cache) -> None:
            super().__init__()
            self.model = model.eval()
            self.alphabet = tuple(alphabet)
            self.outputs = tuple(outputs)
            self.device = device
            self.max_cache = max_cache
            self.n_network_steps = 0
            self.hard_deadline: float | None = None  # perf_counter time after which queries stop (learn_machine)
            self._symbol_id = {a: i for i, a in enumerate(self.alphabet)}
            self.recurrent = is_recurrent(model)
            with torch.no_grad():
                if self.recurrent:
                    h0 = model.initial_state(1).to(device)  # (1, S)
                    out0 = int(model.readout(h0).argmax(-1)[0])
                else:  # a causal model: no state to carry, each query is one pass
                    h0 = None
                    out0 = int(model.prefix_outputs(torch.zeros(1, 0, dtype=torch.long, device=device))[0, 0].argmax(-1))
            self._cache: dict[tuple[int, ...], tuple[torch.Tensor, int]] = {(): (h0, out0)}
            self._prefix: tuple[int, ...] = ()

        def pre(self) -> None:
            self._prefix = ()

        def post(self) -> None:
            pass

        def step(self, letter: Any = None) -> str:
            if letter is not None:
                symbol = self._symbol_id[letter]
                prefix = self._prefix + (symbol,)
                if prefix not in self._cache:
                    if self.hard_deadline is not None and time.perf_counter() > self.hard_deadline:
                        raise _OutOfTime
                    state, _ = self._cache[self._prefix]  # (1, S)
                    with torch.no_grad():
                        if self.recurrent:
                            new = self.model.step(state, torch.tensor([symbol], device=self.device))  # (1, S)
                            out = int(self.model.readout(new).argmax(-1)[0])
                        else:
                            new = None
                            x = torch.tensor([prefix], dtype=torch.long, device=self.device)  # (1, T)
                            out = int(self.model.forward_last(x).argmax(-1)[0])
                    self.n_network_steps += 1
                    if len(self._cache) >= self.max_cache:
                        self._cache = {(): self._cache[()], self._prefix: self._cache[self._prefix]}
                    self._cache[prefix] = (new, out)
                self._prefix = prefix
            return self.outputs[self._cache[self._prefix][1]]

    _SUL_CLASS = NetworkSUL
    return NetworkSUL


@dataclass(frozen=True, eq=False)
class LStarResult:
    """What L* learned from the network.

    Attributes
    ----------
    machine : the learned Moore machine (minimal, canonical numbering).
    n_states : its number of states.
    membership_queries : queries the learner and the oracle asked.
    network_steps : network steps actually run (after the prefix cache).
    seconds : wall-clock time of learning.
    rounds_exhausted : L* stopped at ``max_learning_rounds`` (the result is the last hypothesis).
    budget_exhausted : L* stopped because ``max_seconds`` was spent (the result is the last hypothesis).
    """

    machine: Machine
    n_states: int
    membership_queries: int
    network_steps: int
    seconds: float
    rounds_exhausted: bool = False
    budget_exhausted: bool = False


def _from_aalpy_moore(automaton: Any, alphabet: Sequence[str], outputs: Sequence[str]) -> Machine:
    """An AALpy MooreMachine -> Machine over our alphabet/outputs (states in AALpy's order)."""
    states = list(automaton.states)
    index = {id(s): i for i, s in enumerate(states)}
    out_id = {label: i for i, label in enumerate(outputs)}
    transitions = np.full((len(states), len(alphabet)), -1, dtype=np.int64)  # (N, K)
    for i, s in enumerate(states):
        for k, a in enumerate(alphabet):
            if a in s.transitions:
                transitions[i, k] = index[id(s.transitions[a])]
    output_of_state = np.array([out_id.get(s.output, -1) for s in states], dtype=np.int64)
    start = index[id(automaton.initial_state)]
    return Machine(tuple(alphabet), tuple(outputs), transitions, output_of_state, start, {"learned_by": "aalpy L*"})


def learn_machine(
    model: torch.nn.Module,
    alphabet: Sequence[str],
    outputs: Sequence[str],
    oracle: str = "state_prefix",
    oracle_params: dict | None = None,
    max_learning_rounds: int | None = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_seconds: float | None = 60.0,
) -> LStarResult:
    """Run AALpy's L* (Moore machines) against the network.

    Parameters
    ----------
    model : the trained network, on ``device``.
    alphabet, outputs : the task's symbol and output labels.
    oracle : a key of :data:`ORACLES` ("random_walk", "random_word", "state_prefix", "w_method").
    oracle_params : overrides of the oracle's keyword arguments; "w_method" needs
        ``max_number_of_states``.
    max_learning_rounds : stop after this many hypothesis rounds (None: until the oracle agrees).
        A network is only approximately finite-state: far beyond its training lengths its states
        drift, an oracle that walks that far (long random walks) keeps finding counterexamples and
        the hypothesis keeps growing, so rounds are bounded and the default oracle draws words of
        length 5-30.
        The default oracle is AALpy's state-prefix oracle (200 random walks of length 20 from every
        state of the hypothesis): on a 5-state Tomita network it finishes in seconds where the
        random-word oracle ran for minutes.
    max_seconds : time budget (None: none). Once spent, the equivalence oracle answers "no
        counterexample", so L* returns its current hypothesis (``budget_exhausted`` is set).
    seed : seeds Python's ``random`` inside AALpy's oracles for this call (its state is restored).

    Returns
    -------
    LStarResult

    Raises
    ------
    ImportError : AALpy missing. ValueError : unknown oracle or missing parameter.
    """
    import random

    _, learning_algs, oracles = _aalpy()
    if oracle not in ORACLES:
        raise ValueError(f"unknown oracle {oracle!r}; choose one of {', '.join(ORACLES)}")
    cls_name, params = ORACLES[oracle]
    params = {**params, **(oracle_params or {})}
    if oracle == "w_method" and params.get("max_number_of_states") is None:
        raise ValueError("oracle 'w_method' needs oracle_params={'max_number_of_states': n}")
    sul = network_sul(model, alphabet, outputs, device=device)
    letters = list(alphabet)
    eq_oracle = getattr(oracles, cls_name)(letters, sul, **params)
    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds
    # past the budget the oracle finds nothing, so L* stops at its hypothesis; a round that is
    # still filling its table at 1.25 x the budget is cut off and the last hypothesis returned
    sul.hard_deadline = None if max_seconds is None else start + 1.25 * max_seconds + 1.0
    spent, hypotheses = [], []
    find_cex = eq_oracle.find_cex

    def find_cex_within_budget(hypothesis):
        hypotheses[:] = [hypothesis]
        if deadline is not None and time.perf_counter() > deadline:
            spent.append(True)
            return None
        return find_cex(hypothesis)

    eq_oracle.find_cex = find_cex_within_budget
    saved = random.getstate()
    random.seed(seed)
    t0 = time.perf_counter()
    try:
        learned, info = learning_algs.run_Lstar(letters, sul, eq_oracle, automaton_type="moore",
                                                max_learning_rounds=max_learning_rounds, print_level=0,
                                                return_data=True)
    except _OutOfTime:
        if not hypotheses:
            raise RnnAutomataError(f"L* spent its {max_seconds} s budget before its first hypothesis; "
                                f"raise max_seconds") from None
        learned, info = hypotheses[0], {}
        spent.append(True)
    finally:
        random.setstate(saved)
    seconds = time.perf_counter() - t0
    machine = _from_aalpy_moore(learned, alphabet, outputs).minimize()
    exhausted = bool(max_learning_rounds) and info.get("learning_rounds") == max_learning_rounds
    return LStarResult(machine, machine.n_states, int(sul.num_queries), int(sul.n_network_steps), seconds, exhausted,
                       bool(spent))


@dataclass(frozen=True, eq=False)
class CrossCheck:
    """L* (black box: the network's outputs only) against a white-box machine (from its states).

    Attributes
    ----------
    lstar : what L* learned (:class:`LStarResult`).
    white_box_states : states of the white-box machine, minimised.
    agree : the two machines make the same observation on every string.
    shortest_disagreement : the shortest string (labels, lexicographically first) on which they
        differ; None when they agree.
    outputs_on_it : on that string, the output label of (white box, L*, network); None when they agree.
    """

    lstar: LStarResult
    white_box_states: int
    agree: bool
    shortest_disagreement: tuple[str, ...] | None
    outputs_on_it: tuple[str, str, str] | None

    @property
    def network_sides_with(self) -> str | None:
        """Which machine the network agrees with on the disagreeing string: "white box", "L*",
        "both" (cannot happen for a single output), "neither", or None when they agree."""
        if self.outputs_on_it is None:
            return None
        white, learned, net = self.outputs_on_it
        return {(True, True): "both", (True, False): "white box", (False, True): "L*"}.get(
            (white == net, learned == net), "neither")


def cross_check(model: torch.nn.Module, white_box: Machine, device: str | torch.device = "cpu", **learn_kwargs) -> CrossCheck:
    """Learn `model` with L* (:func:`learn_machine`) and compare with `white_box`, e.g. the ε-free
    machine extracted from its states (rnnautomata.robust), via :meth:`Machine.equivalent`.

    The machines must share the alphabet (labels in one order). On the shortest disagreeing
    string the network is run once more, to say which machine it agrees with there.

    Parameters
    ----------
    model : the network, on ``device``.
    white_box : the machine to compare with.
    learn_kwargs : passed on to :func:`learn_machine` (oracle, oracle_params, max_seconds, seed, ...).

    Returns
    -------
    CrossCheck

    Raises
    ------
    ImportError : AALpy missing.
    """
    from rnnautomata.extract import network_outputs

    result = learn_machine(model, white_box.alphabet, white_box.outputs, device=device, **learn_kwargs)
    white = white_box.minimize()
    same, counterexample = white.equivalent(result.machine)
    if same:
        return CrossCheck(result, white.n_states, True, None, None)
    word = list(counterexample)

    def label(machine: Machine) -> str:
        out = machine.output_of([int(i) for i in word])
        return machine.outputs[out] if out >= 0 else "?"

    if word:
        net = white_box.outputs[int(network_outputs(model, np.array([word]), device=device)[0, -1])]
    else:
        with torch.no_grad():
            if is_recurrent(model):
                logits = model.readout(model.initial_state(1).to(device))[0]  # (O,)
            else:
                logits = model.prefix_outputs(torch.zeros(1, 0, dtype=torch.long, device=device))[0, 0]  # (O,)
        net = white_box.outputs[int(logits.argmax(-1))]
    return CrossCheck(result, white.n_states, False, tuple(white_box.alphabet[i] for i in word),
                      (label(white), label(result.machine), net))
