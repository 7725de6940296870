"""The transformer: causality, hooks, config, hand-set known answers, and a tiny run end to end."""

import json

import numpy as np
import pytest
import torch

from rnnautomata.automata import Machine
from rnnautomata.config import load_study, study_from_dict, study_to_toml
from rnnautomata.data.regular import first_symbol
from rnnautomata.errors import ConfigError
from rnnautomata.models import MODELS, Transformer, is_recurrent
from rnnautomata.models.transformer import POSITIONALS, init_weights
from rnnautomata.probe import prefix_tree, prefix_tree_from_strings, probe
from rnnautomata.robust import extract_robust

from conftest import tiny_raw


def _random(positional, attn_only=False, seed=0, **kwargs):
    model = Transformer(2, 3, n_layers=2, d_model=8, n_heads=2, attn_only=attn_only, positional=positional,
                        max_length=16, **kwargs)
    init_weights(model, 0.5, torch.Generator().manual_seed(seed))
    return model.eval()


@pytest.mark.parametrize("positional", POSITIONALS)
@pytest.mark.parametrize("attn_only", [False, True])
def test_one_pass_probe_equals_a_forward_per_prefix(positional, attn_only):
    """The probe reads each prefix's state from a leaf's pass; a pass over the prefix alone agrees."""
    model = _random(positional, attn_only)
    assert not is_recurrent(model)
    rng = np.random.default_rng(1)
    for tree in (prefix_tree(2, 5), prefix_tree_from_strings([rng.integers(0, 2, size=n) for n in (3, 7, 7, 1)], 2)):
        result = probe(model, tree, batch_size=10)
        with torch.no_grad():
            for node in range(tree.n_nodes):
                string = torch.tensor([tree.string(node)], dtype=torch.long).reshape(1, -1)  # (1, t)
                alone = model.prefix_states(string)[0, -1]  # (d,)
                np.testing.assert_allclose(result.states[node], alone.numpy(), atol=1e-5)
                assert result.outputs[node] == int(model.readout(alone).argmax())


@pytest.mark.parametrize("positional", POSITIONALS)
def test_position_t_sees_only_symbols_up_to_t(positional):
    model = _random(positional)
    x = torch.tensor([[0, 1, 1, 0, 1, 0]])
    y = x.clone()
    y[0, 4:] = 1 - y[0, 4:]
    with torch.no_grad():
        a, b = model.prefix_states(x), model.prefix_states(y)  # (1, 7, d)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_outputs_forward_and_hooks_agree():
    model = _random("learned")
    x = torch.tensor([[0, 1, 1], [1, 0, 0]])
    with torch.no_grad():
        logits, cache = model.run_with_cache(x)  # (2, 4, 3)
        torch.testing.assert_close(model(x), logits[:, 1:])
        torch.testing.assert_close(model.forward_last(x), logits[:, -1])
        torch.testing.assert_close(model.prefix_states(x), cache["ln_final.hook_normalized"])
    names = {f"blocks.{layer}.{h}" for layer in range(2) for h in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post",
                                                             "attn.hook_pattern")}
    assert names | {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"} <= set(cache)
    pattern = cache["blocks.0.attn.hook_pattern"]  # (B, H, P, P)
    assert pattern.shape == (2, 2, 4, 4)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 2, 4))
    assert float(pattern.triu(1).abs().max()) == 0.0  # causal


def test_a_learned_table_refuses_longer_strings():
    model = _random("learned")
    with pytest.raises(ConfigError, match="model.transformer.max_length = 16"):
        model.prefix_states(torch.zeros(1, 17, dtype=torch.long))
    _random("sinusoidal").prefix_states(torch.zeros(1, 40, dtype=torch.long))  # no table, any length


def test_probing_beyond_a_learned_table_is_a_one_line_error():
    """A prefix tree deeper than the learned positions (here 16): the error names the field."""
    model = _random("learned")
    probe(model, prefix_tree(2, 16))  # the table's last row: fine
    with pytest.raises(ConfigError) as err:
        probe(model, prefix_tree(2, 17))
    assert "model.transformer.max_length = 16" in str(err.value) and "\n" not in str(err.value)


def test_a_state_layer_the_model_lacks_is_a_one_line_error():
    from rnnautomata.probe import state_view

    with pytest.raises(ValueError) as err:
        state_view(_random("rope"), prefix_tree(2, 3), state="resid_mid.2")
    assert "probe.state = 'resid_mid.2' names block 2 but the model has 2" in str(err.value)
    assert "\n" not in str(err.value)


# --- hand-set weights: known answers ----------------------------------------------------------

def _zeroed(d_model, positional, max_length=64):
    model = Transformer(2, 2, n_layers=1, d_model=d_model, n_heads=1, attn_only=True, positional=positional,
                        max_length=max_length)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for block in model.blocks:
            block.ln1.w.fill_(1.0)
    return model.eval()


def last_symbol_transformer() -> Transformer:
    """No attention, no positions: the state is LayerNorm(embedding of the last token)."""
    model = _zeroed(4, "none")
    with torch.no_grad():
        model.W_E.copy_(torch.eye(3, 4))  # symbol 0 -> e0, symbol 1 -> e1, BOS -> e2
        model.ln_final.w.fill_(1.0)
        model.W_U[1, 1], model.W_U[1, 0] = 1.0, -1.0  # "1" when the last token is symbol 1
    return model


def first_symbol_transformer() -> Transformer:
    """One head attends from every position to position 1 (BOS to itself) and copies its token.

    Residual dims: 0-2 tokens (0, 1, BOS), 3 "position 1", 4 "another position", 5-7 the copied
    token. Every position's residual holds the same multiset of values, so every LayerNorm scales
    alike, and the final one keeps the copied dims only: the state is exactly a function of the
    first symbol.
    """
    model = _zeroed(8, "learned")
    big_query, big_value = 1000.0, 10.0
    with torch.no_grad():
        model.W_E.copy_(torch.eye(3, 8))
        model.W_pos[:, 4] = 1.0
        model.W_pos[1, 4], model.W_pos[1, 3] = 0.0, 1.0
        attn = model.blocks[0].attn
        attn.b_Q[0, 0] = big_query  # every query asks for ...
        attn.W_K[0, 3, 0] = 1.0  # ... the key "position 1" (BOS, alone in its window, sees itself)
        for token in range(3):
            attn.W_V[0, token, token] = 1.0
            attn.W_O[0, token, 5 + token] = big_value
        model.ln_final.w[5:] = 1.0
        model.W_U[6, 1], model.W_U[6, 0] = 1.0, -1.0  # "1" when the first symbol was 1
    return model


def _extract(model, depth=5):
    return extract_robust(model, prefix_tree(2, depth), ("0", "1"), ("0", "1"))


def test_hand_set_last_symbol_transformer_extracts_the_last_symbol_machine():
    truth = Machine(alphabet=("0", "1"), outputs=("0", "1"), transitions=np.array([[1, 2]] * 3),
                    output_of_state=np.array([0, 0, 1]))
    result = _extract(last_symbol_transformer())
    same, counterexample = result.machine.equivalent(truth)
    assert same, counterexample
    assert result.agreement == 1.0 and result.machine.n_states == 2


def test_hand_set_first_symbol_transformer_extracts_the_first_symbol_machine():
    task = first_symbol()
    model = first_symbol_transformer()
    pr = probe(model, prefix_tree(2, 6))
    assert len(np.unique(pr.states.round(5), axis=0)) == 3  # empty prefix, first 0, first 1
    result = extract_robust(model, pr.tree, task.alphabet, task.outputs, probe_result=pr)
    same, counterexample = result.machine.equivalent(task.machine)
    assert same, counterexample
    assert result.agreement == 1.0 and result.machine.n_states == 3


# --- config -----------------------------------------------------------------------------------

def _raw(transformer=None, **model):
    raw = tiny_raw()
    raw["model"] = {"arch": "transformer", **model}
    if transformer is not None:
        raw["model"]["transformer"] = transformer
    raw["task"]["test_lengths"] = [20]
    raw["extract"] = {"check_length": 20}
    return raw


def test_transformer_study_round_trips_and_registry_matches_the_config():
    from rnnautomata.config import _CHOICES

    assert set(_CHOICES["model.arch"]) == set(MODELS)
    study = study_from_dict(_raw({"d_model": 8, "positional": "rope"}))
    assert study.model.transformer.d_model == 8
    text = study_to_toml(study)
    assert "[model.transformer]" in text and "hidden_size" not in text
    import tomllib

    assert study_from_dict(tomllib.loads(text)) == study
    rnn = study_from_dict(tiny_raw())
    assert rnn.model.transformer is None and "transformer" not in study_to_toml(rnn)


@pytest.mark.parametrize("raw,message", [
    (_raw({"positional": "alibi"}), "model.transformer.positional = 'alibi' is not allowed"),
    (_raw({"d_model": 10, "n_heads": 3}), "model.transformer.d_model (10) is not a multiple of n_heads (3)"),
    (_raw({"d_model": 6, "n_heads": 2, "positional": "rope"}), "needs an even head width"),
    (_raw({"max_length": 12}), "task.test_lengths = 20 is longer than model.transformer.max_length = 12"),
    ({**_raw({"max_length": 24}), "probe": {"depth": 30}}, "probe.depth = 30 (its checks read strings of 31) is longer than model.transformer.max_length = 24"),
    ({**_raw(), "probe": {"state": "resid_pre.2"}}, "probe.state = 'resid_pre.2' names block 2 but the model has 2"),
    (_raw({"layers": 2}), "unknown field model.transformer.layers"),
    (_raw({"n_layers": 0}), "model.transformer.n_layers must be positive"),
    (_raw(hidden_size=8), "model.hidden_size applies to recurrent archs only"),
    (tiny_raw(model={"arch": "gru", "transformer": {"d_model": 8}}), "[model.transformer] applies to model.arch"),
])
def test_bad_transformer_configs_are_one_line_errors(raw, message):
    with pytest.raises(ConfigError) as err:
        study_from_dict(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_seeds_are_allowed_for_a_transformer():
    """Many seeds of a transformer train as one stacked model (rnnautomata.stacked; tests/test_stacked.py)."""
    assert study_from_dict({**_raw(), "seeds": [0, 1]}).seeds == (0, 1)


def test_shipped_transformer_study_loads():
    study = load_study("tasks/tomita1_transformer.toml")
    assert study.model.arch == "transformer" and study.model.transformer.positional == "rope"


# --- end to end -------------------------------------------------------------------------------

def test_tiny_transformer_study_runs_end_to_end(tmp_path, capsys):
    """train -> checkpoints -> track -> machine, through the CLI, on Tomita 1."""
    from rnnautomata.cli import main
    from rnnautomata.train import load_model

    raw = _raw({"n_layers": 1, "d_model": 8, "n_heads": 2, "positional": "rope"})
    raw["task"].update(name="tomita1", target="all", train_max_length=6)
    raw["train"].update(optimizer="adam", lr=0.02, loss="cross_entropy", epochs=3, batch_size=16)
    raw["probe"] = {"depth": 5}
    path = tmp_path / "study.toml"
    path.write_text(study_to_toml(study_from_dict(raw)))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-render"]) == 0
    assert "ε-free machine" in capsys.readouterr().out
    dynamics = json.loads((out / "dynamics.json").read_text())
    assert len(dynamics["checkpoints"]) >= 3
    assert all(c["robust"]["n_states"] >= 1 for c in dynamics["checkpoints"])
    assert all(0.0 <= c["congruence"] <= 1.0 and 0.0 <= c["robust"]["congruence"] <= 1.0
               for c in dynamics["checkpoints"])
    assert main(["steps", str(out)]) == 0
    assert "congruence" in capsys.readouterr().out
    model, info = load_model(out)
    assert isinstance(model, Transformer) and info["study"].model.transformer.d_model == 8
    assert main(["extract", str(out), "--format", "json", "--quiet"]) == 0
    machine = json.loads(capsys.readouterr().out)
    assert machine["alphabet"] == ["0", "1"]


def test_lstar_learns_the_hand_set_first_symbol_transformer():
    """The black-box cross-check works on a model without `step` (one pass per queried prefix)."""
    pytest.importorskip("aalpy")
    from rnnautomata.lstar import learn_machine

    task = first_symbol()
    result = learn_machine(first_symbol_transformer(), task.alphabet, task.outputs, oracle="state_prefix",
                           oracle_params={"walks_per_state": 20, "walk_len": 8}, max_seconds=30)
    same, counterexample = result.machine.equivalent(task.machine)
    assert same, counterexample


# --- which state (probe.state, probe.remove_position, probe.metric) ---------------------------

class _HandStates(torch.nn.Module):
    """A causal "model" with hand-built states: at position p (token BOS, 0 or 1),
    final = (p + 1) · onehot(token) (direction = last token, length grows with p) and
    blocks.0.hook_resid_post = onehot(token) + 10 p · e3 (last token plus a position code)."""

    n_symbols, n_outputs, state_size, arch = 2, 2, 4, "transformer"
    blocks = [None]

    def _states(self, symbols):
        B, T = symbols.shape
        tokens = torch.cat([torch.full((B, 1), 2), symbols], dim=1)  # (B, P)
        onehot = torch.nn.functional.one_hot(tokens, 4).float()  # (B, P, 4)
        p = torch.arange(T + 1).float()[None, :, None]  # (1, P, 1)
        code = torch.zeros(4)
        code[3] = 10.0
        return {"ln_final.hook_normalized": (p + 1) * onehot, "blocks.0.hook_resid_post": onehot + p * code}

    def run_with_cache(self, symbols):
        cache = self._states(symbols)
        return self.readout(cache["ln_final.hook_normalized"]), cache

    def prefix_states(self, symbols):
        return self._states(symbols)["ln_final.hook_normalized"]  # (B, P, 4)

    def readout(self, states):
        return states[..., :2]  # (..., 2): "1" after a 1, else "0"

    def prefix_outputs(self, symbols):
        return self.readout(self.prefix_states(symbols))  # (B, P, 2)

    def forward(self, symbols):
        return self.prefix_outputs(symbols)[:, 1:]


def _distinct(states):
    return len(np.unique(states.round(5), axis=0))


def test_hook_of_state_names_and_errors():
    from rnnautomata.probe import hook_of_state

    assert hook_of_state("final", 2) == "ln_final.hook_normalized"
    assert hook_of_state("resid_post.1", 2) == "blocks.1.hook_resid_post"
    assert hook_of_state("resid_mid.0", 2) == "blocks.0.hook_resid_mid"
    with pytest.raises(ValueError, match="names block 2 but the model has 2"):
        hook_of_state("resid_post.2", 2)
    with pytest.raises(ValueError, match="not allowed"):
        hook_of_state("attn.0", 2)


def test_state_view_reads_a_layer_and_keeps_the_model_outputs():
    from rnnautomata.probe import state_view

    model = _random("rope")
    tree = prefix_tree(2, 5)
    assert state_view(model, tree) is model  # defaults: the model itself
    view = state_view(model, tree, state="resid_post.0")
    pr, plain = probe(view, tree), probe(model, tree)
    np.testing.assert_array_equal(pr.outputs, plain.outputs)
    for node in (0, 3, 40, tree.n_nodes - 1):
        x = torch.tensor([tree.string(node)], dtype=torch.long).reshape(1, -1)
        _, cache = model.run_with_cache(x)
        np.testing.assert_allclose(pr.states[node], cache["blocks.0.hook_resid_post"][0, -1].numpy(), atol=1e-5)


def test_remove_position_and_cosine_on_hand_built_states():
    from rnnautomata.probe import state_view

    model, tree = _HandStates(), prefix_tree(2, 6)
    # final: (p + 1) · onehot(last token): 2 per length + the root; by direction: 3 (BOS, 0, 1)
    assert _distinct(probe(state_view(model, tree), tree).states) == 2 * 6 + 1
    assert _distinct(probe(state_view(model, tree, metric="cosine"), tree).states) == 3
    # resid_post.0: onehot(last token) + a position code: 2 per length; minus each length's mean
    # (0.5 (e0 + e1) + the code) only the last token is left: ±0.5 (e0 - e1), and the root -> 0
    raw = probe(state_view(model, tree, state="resid_post.0"), tree).states
    assert _distinct(raw) == 2 * 6 + 1
    centred = probe(state_view(model, tree, state="resid_post.0", remove_position=True), tree).states
    assert _distinct(centred) == 3
    np.testing.assert_allclose(centred[0], 0.0)
    np.testing.assert_allclose(centred[1], [0.5, -0.5, 0, 0])  # "0"
    # the extraction sees the view's states and the model's outputs: the last-symbol machine
    from rnnautomata.extract import extract_machine
    from rnnautomata.merge import make_merger

    pr = probe(state_view(model, tree, metric="cosine"), tree)
    ext = extract_machine(pr, make_merger("leader", epsilon=0.1).fit(pr.states).labels_, ("0", "1"), ("0", "1"))
    assert ext.machine.minimize().n_states == 2 and ext.finite


@pytest.mark.parametrize("probe_section,message", [
    ({"state": "resid_post.1"}, "probe.state = 'resid_post.1' names block 1 but the model has 1"),
    ({"state": "embed"}, "probe.state = 'embed' is not allowed"),
    ({"metric": "manhattan"}, "probe.metric = 'manhattan' is not allowed"),
])
def test_bad_state_options_are_one_line_errors(probe_section, message):
    raw = _raw({"n_layers": 1})
    raw["probe"] = {"depth": 4, **probe_section}
    with pytest.raises(ConfigError) as err:
        study_from_dict(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_state_options_refuse_a_recurrent_model():
    with pytest.raises(ConfigError, match="probe.remove_position applies to model.arch = 'transformer' only"):
        study_from_dict(tiny_raw(probe={"remove_position": True}))


def test_track_with_state_options(tmp_path):
    """A tiny run tracked with a layer's residual stream, position removed, by direction."""
    from rnnautomata.dynamics import track
    from rnnautomata.train import train

    raw = _raw({"n_layers": 2, "d_model": 8, "n_heads": 2, "positional": "learned", "max_length": 24})
    raw["task"].update(name="tomita1", target="all", train_max_length=5)
    raw["train"].update(optimizer="adam", lr=0.02, loss="cross_entropy", epochs=2, batch_size=16)
    raw["probe"] = {"depth": 4, "state": "resid_post.0", "remove_position": True, "metric": "cosine"}
    study = study_from_dict(raw)
    train(study, tmp_path / "r", progress=False)
    dyn = track(tmp_path / "r", progress=False)
    assert all(c["robust"]["n_states"] >= 1 and 0 <= c["congruence"] <= 1 for c in dyn["checkpoints"])


def _first_difference(a: Machine, b: Machine, depth: int = 5):
    """Brute force: the shortest (then lexicographically first) string up to `depth` on which the
    two machines' outputs differ, as labels; None if none does."""
    import itertools

    for n in range(depth + 1):
        for word in itertools.product(range(len(a.alphabet)), repeat=n):
            if a.outputs[a.output_of(list(word))] != b.outputs[b.output_of(list(word))]:
                return tuple(a.alphabet[i] for i in word)
    return None


def test_lstar_cross_check_against_the_white_box_machine():
    """L* on the hand-set first-symbol transformer agrees with its extracted machine; against a
    wrong white box (the last-symbol machine) the shortest disagreement is brute force's, "01",
    where the network sides with L*."""
    pytest.importorskip("aalpy")
    from rnnautomata.lstar import cross_check

    task, model = first_symbol(), first_symbol_transformer()
    params = {"oracle": "state_prefix", "oracle_params": {"walks_per_state": 20, "walk_len": 8}, "max_seconds": 30}
    white = extract_robust(model, prefix_tree(2, 5), task.alphabet, task.outputs).machine
    check = cross_check(model, white, **params)
    assert check.agree and check.shortest_disagreement is None and check.network_sides_with is None
    assert check.lstar.machine.equivalent(task.machine)[0] and check.white_box_states == 3

    last = Machine(alphabet=("0", "1"), outputs=task.outputs, transitions=np.array([[1, 2]] * 3),
                   output_of_state=np.array([0, 0, 1]))
    wrong = cross_check(model, last, **params)
    assert not wrong.agree
    assert wrong.shortest_disagreement == _first_difference(last, task.machine) == ("0", "1")
    assert wrong.outputs_on_it == ("accept", "reject", "reject") and wrong.network_sides_with == "L*"
