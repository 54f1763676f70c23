"""The streaming LSTM/GRU encoder: training randomness, deterministic inference, explicit-state streaming."""

import random

import pytest
import torch

from espdl_stream.models import EncoderConfig, StreamingEncoder, build_model


@pytest.fixture(params=["lstm", "gru"])
def encoder(request):
    torch.manual_seed(0)
    return StreamingEncoder(EncoderConfig(rnn=request.param))


def test_sized_for_a_microcontroller(encoder):
    assert sum(p.numel() for p in encoder.parameters()) < 300_000


def test_training_is_random_and_inference_deterministic(encoder):
    x = torch.randn(2, 40, 48)
    encoder.train()
    random.seed(1)
    outputs = [encoder(x, warmup=0.3)[0] for _ in range(6)]
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(x)[0], encoder(x)[0])


def test_layer_dropout_follows_the_warmup_schedule(encoder):
    x_in, x_out = torch.zeros(1, 2, 1), torch.ones(1, 2, 1)
    encoder.train()
    random.seed(0)
    alphas = {round(encoder._layer_dropout(x_in, x_out, warmup=0.2)[0, 0, 0].item(), 4) for _ in range(400)}
    assert alphas == {0.3, 0.1}  # warmup_scale = min(0.1 + warmup, 1.0); 0.1 when the layer is bypassed
    alphas = {round(encoder._layer_dropout(x_in, x_out, warmup=2.0)[0, 0, 0].item(), 4) for _ in range(400)}
    assert alphas == {1.0, 0.1}


def test_aux_combination_is_one_hot_or_favours_the_last_layer(encoder):
    n = encoder.config.num_layers  # aux layers 0 and 1, and the last: basis vectors reveal the weights
    outputs = [torch.eye(n)[i] for i in range(n)]
    random.seed(0)
    torch.manual_seed(0)
    weights = torch.stack([encoder._combine_aux(outputs) for _ in range(400)])
    one_hot = (weights.max(dim=1).values == 1.0).sum().item()
    assert 150 < one_hot < 250  # aux_one_hot_prob = 0.5
    soft = weights[weights.max(dim=1).values < 1.0]
    assert torch.allclose(soft.sum(dim=1), torch.ones(len(soft)))
    assert soft[:, -1].mean() > 0.5 > soft[:, 0].mean()  # softmax weights favour the last layer


def test_streaming_with_states_equals_offline(encoder):
    encoder.eval()
    x = torch.randn(2, 40, 96)
    with torch.no_grad():
        offline, lengths, final = encoder(x, torch.tensor([96, 90]))
        states, parts = encoder.get_init_states(2), []
        for chunk in torch.split(x, 8, dim=-1):
            y, _, states = encoder(chunk, None, states)
            parts.append(y)
    assert torch.allclose(torch.cat(parts, dim=-1), offline, atol=1e-5, rtol=0)
    assert all(torch.allclose(states[k], final[k], atol=1e-5, rtol=0) for k in final)
    assert lengths.tolist() == [24, 23]  # two causal stride-2 convs: ceil(ceil(n / 2) / 2)


def test_reset_states_gives_a_fresh_start(encoder):
    encoder.eval()
    x = torch.randn(1, 40, 16)
    with torch.no_grad():
        first, _, _ = encoder(x, None, encoder.get_init_states(1))
        _, _, used = encoder(torch.randn(1, 40, 16), None, encoder.get_init_states(1))
        _, _, _ = encoder(x, None, used)
        again, _, _ = encoder(x, None, encoder.get_init_states(1))
    assert torch.equal(first, again)


def test_streaming_step_guards_mode_and_shapes(encoder):
    states = encoder.get_init_states(1)
    with pytest.raises(AssertionError, match="eval"):
        encoder.train()(torch.randn(1, 40, 8), None, states)
    encoder.eval()
    bad = dict(states, h0=torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="state h0 has shape"):
        encoder(torch.randn(1, 40, 8), None, bad)
    with pytest.raises(ValueError, match="multiple of the layer stride 2"):
        encoder(torch.randn(1, 40, 6), None, states)


def test_state_names_and_shapes():
    lstm, gru = build_model("lstm"), build_model("gru")
    assert lstm.recurrent_state_names() == ["h0", "c0", "h1", "c1", "h2", "c2"]
    assert gru.recurrent_state_names() == ["h0", "h1", "h2"]
    states = lstm.get_init_states(3)
    assert states["c1"].shape == (1, 3, 96) and states["conv0"].shape == (3, 40, 2)
