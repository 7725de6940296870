import pytest
import torch

from rnnautomata.config import ModelConfig
from rnnautomata.models import build_recurrent


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
def test_step_api_matches_fused_forward(arch):
    g = torch.Generator().manual_seed(0)
    model = build_recurrent(ModelConfig(arch=arch, hidden_size=9, init_gain=1.0), 3, 4, g)
    x = torch.randint(0, 3, (5, 7), generator=g)  # (B, T)
    out = model(x)  # (B, T, O)
    state = model.initial_state(5)
    assert state.shape == (5, model.state_size)
    for t in range(7):
        state = model.step(state, x[:, t])
        torch.testing.assert_close(model.readout(state), out[:, t])
    torch.testing.assert_close(model.forward_last(x), out[:, -1])
    assert model.state_size == (18 if arch == "lstm" else 9)


def test_init_is_seeded_small_xavier_with_zero_bias():
    cfg = ModelConfig(hidden_size=100, init_gain=0.1)
    a = build_recurrent(cfg, 2, 2, torch.Generator().manual_seed(1))
    b = build_recurrent(cfg, 2, 2, torch.Generator().manual_seed(1))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    w = a.cell.weight_hh_l0
    # Xavier-normal: std = gain * sqrt(2 / (fan_in + fan_out)) = 0.1 * sqrt(2/200) = 0.01
    assert abs(w.std().item() - 0.01) < 0.001
    assert torch.count_nonzero(a.cell.bias_hh_l0) == 0
    assert torch.equal(a.initial_state(1), torch.ones(1, 100))


def test_default_init_is_seeded_torch_uniform():
    cfg = ModelConfig(hidden_size=16, init="default")
    a = build_recurrent(cfg, 2, 2, torch.Generator().manual_seed(3))
    b = build_recurrent(cfg, 2, 2, torch.Generator().manual_seed(3))
    values = []
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
        if n != "h0":
            values.append(p.flatten())
    values = torch.cat(values)
    assert values.abs().max() <= 0.25 and values.abs().max() > 0.24  # uniform in ±1/sqrt(16)
    assert torch.count_nonzero(values) == values.numel()  # biases too


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
def test_forward_last_in_time_chunks_equals_one_kernel_call(arch):
    """forward_last feeds long strings to the kernel TIME_CHUNK symbols at a time; the state
    carried across chunks gives exactly the output of one call over the whole string."""
    from torch.nn import functional as F

    from rnnautomata.models.rnn import TIME_CHUNK

    model = build_recurrent(ModelConfig(arch=arch, hidden_size=8, init_gain=1.0), 2, 2, torch.Generator().manual_seed(1))
    symbols = torch.randint(0, 2, (5, 2 * TIME_CHUNK + 37), generator=torch.Generator().manual_seed(2))  # (B, T)
    with torch.no_grad():
        whole, _ = model.cell(F.one_hot(symbols, 2).float(), model._unpack(model.initial_state(5)))  # (B, T, H)
        expected = model.readout_layer(whole[:, -1])  # (B, O)
        assert torch.equal(model.forward_last(symbols), expected)


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
def test_sequence_contract_of_recurrent_models(arch):
    """prefix_states starts at h0 and follows step; prefix_outputs is exactly [readout(h0), forward]
    (what training supervised before the contract, so training is unchanged)."""
    from rnnautomata.models import SequenceModel, is_recurrent

    model = build_recurrent(ModelConfig(arch=arch, hidden_size=5, init_gain=1.0), 2, 2, torch.Generator().manual_seed(0))
    assert isinstance(model, SequenceModel) and is_recurrent(model)
    x = torch.randint(0, 2, (4, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        states = model.prefix_states(x)  # (B, T + 1, S)
        assert states.shape == (4, 7, model.state_size)
        state = model.initial_state(4)
        torch.testing.assert_close(states[:, 0], state)
        for t in range(6):
            state = model.step(state, x[:, t])
            torch.testing.assert_close(states[:, t + 1], state, atol=1e-6, rtol=1e-5)
        old = torch.cat([model.readout(model.initial_state(4)).unsqueeze(1), model(x)], dim=1)
        assert torch.equal(model.prefix_outputs(x), old)
