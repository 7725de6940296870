"""AALpy L* against a network: exact on a network that *is* a machine; cross-check on a trained one.

Tiers: the first tests are unit tests (a hand-built "network" whose state is the one-hot state of a
known machine); `test_lstar_agrees_with_extraction_on_trained_tomita4` trains a small GRU and is
marked slow. All are skipped when AALpy is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("aalpy")

from rnnautomata import lstar  # noqa: E402
from rnnautomata.data import regular  # noqa: E402


class MachineNetwork(torch.nn.Module):
    """The one-step API over a Machine: state = one-hot machine state, readout = one-hot output."""

    def __init__(self, machine):
        super().__init__()
        self.machine = machine
        self.n_symbols, self.n_outputs = machine.n_symbols, len(machine.outputs)
        self.hidden_size = self.state_size = machine.n_states
        self.transitions = torch.tensor(np.array(machine.transitions))  # (N, K)
        self.output_of_state = torch.tensor(np.array(machine.output_of_state))  # (N,)

    def initial_state(self, batch_size):
        return torch.nn.functional.one_hot(torch.full((batch_size,), self.machine.start), self.state_size).float()

    def step(self, state, symbols):
        nxt = self.transitions[state.argmax(-1), symbols]  # (B,)
        return torch.nn.functional.one_hot(nxt, self.state_size).float()

    def readout(self, state):
        out = self.output_of_state[state.argmax(-1)]
        return torch.nn.functional.one_hot(out, self.n_outputs).float()


def test_sul_answers_like_the_machine():
    task = regular.tomita(3)
    sul = lstar.network_sul(MachineNetwork(task.machine), task.alphabet, task.outputs)
    assert sul.query(()) == ["accept"]
    for word in ["10", "100", "1011", "0110100"]:
        expected = [task.outputs[o] for o in task.targets(np.array([task.machine.encode(word)]))[0]]
        assert sul.query(tuple(word)) == expected
    steps = sul.n_network_steps
    sul.query(tuple("0110100"))  # cached: no new network steps
    assert sul.n_network_steps == steps


@pytest.mark.parametrize("index", [1, 3, 5, 7])
def test_lstar_learns_the_machine_behind_a_perfect_network(index):
    task = regular.tomita(index)
    result = lstar.learn_machine(MachineNetwork(task.machine), task.alphabet, task.outputs, oracle="state_prefix",
                                 oracle_params={"walks_per_state": 50, "walk_len": 12})
    assert result.machine.equivalent(task.machine)[0]
    assert result.n_states == task.machine.n_states
    assert result.membership_queries > 0 and not result.rounds_exhausted


def test_lstar_on_a_moore_machine_with_three_symbols():
    task = regular.random_task(6, 3, 3, seed=0)
    result = lstar.learn_machine(MachineNetwork(task.machine), task.alphabet, task.outputs, oracle="w_method",
                                 oracle_params={"max_number_of_states": 7})
    assert result.machine.equivalent(task.machine)[0]


def test_unknown_oracle():
    task = regular.tomita(1)
    with pytest.raises(ValueError, match="unknown oracle"):
        lstar.learn_machine(MachineNetwork(task.machine), task.alphabet, task.outputs, oracle="nope")
    with pytest.raises(ValueError, match="max_number_of_states"):
        lstar.learn_machine(MachineNetwork(task.machine), task.alphabet, task.outputs, oracle="w_method")


@pytest.mark.slow
def test_lstar_agrees_with_extraction_on_trained_tomita4(tmp_path):
    """Train a small GRU on Tomita 4; the ε-merged machine and L*'s machine are the same language."""
    from rnnautomata.config import study_from_dict
    from rnnautomata.extract import extract_machine
    from rnnautomata.merge import LeaderMerger, epsilon_from_states
    from rnnautomata.probe import prefix_tree, probe
    from rnnautomata.train import load_model, train

    from conftest import tiny_raw

    raw = tiny_raw(
        task={"name": "tomita4", "train_max_length": 9, "target": "all", "test_lengths": [100], "test_samples": 32},
        model={"arch": "gru", "hidden_size": 16, "init": "xavier_uniform", "init_gain": 1.0, "initial_state": 0.0},
        train={"optimizer": "adam", "lr": 0.02, "loss": "cross_entropy", "batch_size": 64, "epochs": 20,
               "checkpoint_every": 20, "early_checkpoints": 0, "eval_every": None},
        probe={"depth": 8},
    )
    train(study_from_dict(raw), tmp_path / "run", progress=False)
    model, info = load_model(tmp_path / "run")
    task = info["task"]
    result = probe(model, prefix_tree(2, 8))
    eps = epsilon_from_states([result.states], scale=0.3)
    ext = extract_machine(result, LeaderMerger(eps).fit(result.states).labels_, task.alphabet, task.outputs)
    extracted = ext.machine.minimize()
    learned = lstar.learn_machine(model, task.alphabet, task.outputs).machine
    assert extracted.equivalent(task.machine)[0]
    assert learned.equivalent(task.machine)[0]
    assert learned.equivalent(extracted)[0]


def test_default_oracle_learns_a_perfect_network_and_a_spent_budget_stops_learning():
    task = regular.tomita(4)
    full = lstar.learn_machine(MachineNetwork(task.machine), task.alphabet, task.outputs)  # defaults
    assert full.machine.equivalent(task.machine)[0] and not full.budget_exhausted
    big = regular.random_task(30, 2, 2, seed=3)
    cut = lstar.learn_machine(MachineNetwork(big.machine), big.alphabet, big.outputs, max_seconds=0.0)
    # with no time, the oracle never looks for a counterexample: L* returns its first hypothesis
    assert cut.budget_exhausted and cut.n_states < big.machine.n_states
    assert not cut.machine.equivalent(big.machine)[0]
