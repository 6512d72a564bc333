"""The mogrifier LSTM cell against its equations (Melis et al. 2020; paper eqs. 8-11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmfer.models import GateProjection, MogrifierLSTM, MogrifierLSTMCell

# Hand-picked values for a cell with input_size=3, hidden_size=2.
X = np.array([[0.5, -1.0, 2.0]])  # (1, 3)
H = np.array([[0.3, -0.7]])  # (1, 2)
Q1 = np.array([[0.2, -0.4], [1.0, 0.5], [-0.3, 0.8]])  # (3, 2) hidden -> input
BQ1 = np.array([0.1, -0.2, 0.0])
R1 = np.array([[0.5, -0.1, 0.3], [-0.6, 0.2, 0.4]])  # (2, 3) input -> hidden
BR1 = np.array([-0.05, 0.15])
Q2 = np.array([[-0.7, 0.1], [0.0, 0.9], [0.4, -0.2]])  # (3, 2)
BQ2 = np.array([0.3, 0.0, -0.1])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def hand_cell(rounds: int, residual: bool) -> MogrifierLSTMCell:
    cell = MogrifierLSTMCell(3, 2, rounds=rounds, residual_gate=residual).double()
    with torch.no_grad():
        for proj, (w, b) in zip(list(cell.q), [(Q1, BQ1), (Q2, BQ2)], strict=False):
            proj.weight.copy_(torch.from_numpy(w))
            proj.bias.copy_(torch.from_numpy(b))
        if rounds >= 2:
            cell.r[0].weight.copy_(torch.from_numpy(R1))
            cell.r[0].bias.copy_(torch.from_numpy(BR1))
    return cell


def expected(rounds: int, residual: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rounds written out one by one, in numpy."""
    k = 1.0 if residual else 0.0  # residual form keeps the un-gated value: v + 2 sigma(.) v
    x, h = X, H
    # round 1 (odd): x gated by h
    x1 = k * x + 2.0 * sigmoid(h @ Q1.T + BQ1) * x
    if rounds == 1:
        return x1, h
    # round 2 (even): h gated by the new x
    h2 = k * h + 2.0 * sigmoid(x1 @ R1.T + BR1) * h
    if rounds == 2:
        return x1, h2
    # round 3 (odd): x gated again, by the new h, with Q^2
    x3 = k * x1 + 2.0 * sigmoid(h2 @ Q2.T + BQ2) * x1
    return x3, h2


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_mogrify_matches_the_equations(rounds: int, residual: bool) -> None:
    cell = hand_cell(rounds, residual)
    x, h = cell.mogrify(torch.from_numpy(X), torch.from_numpy(H))
    want_x, want_h = expected(rounds, residual)
    np.testing.assert_allclose(x.detach().numpy(), want_x, rtol=1e-12)
    np.testing.assert_allclose(h.detach().numpy(), want_h, rtol=1e-12)
    # The gating did something (the check can fail).
    assert not np.allclose(want_x, X)


@pytest.mark.parametrize(("residual", "factor"), [(False, 1.0), (True, 2.0)])
def test_zero_preactivation_gives_the_papers_fixed_point(residual: bool, factor: float) -> None:
    """sigma(0) = 1/2: plain gate 2 * 0.5 * x = x; paper's eq. 11 x + 2 * 0.5 * x = 2x."""
    cell = MogrifierLSTMCell(3, 2, rounds=2, residual_gate=residual)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
    x, h = cell.mogrify(torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[0.5, 4.0]]))
    assert x.tolist() == [[factor * 1.0, factor * -2.0, factor * 3.0]]
    assert h.tolist() == [[factor * 0.5, factor * 4.0]]


def test_round_count_sets_the_number_of_q_and_r() -> None:
    cell = MogrifierLSTMCell(5, 4, rounds=5)
    assert len(cell.q) == 3 and len(cell.r) == 2
    assert cell.q[0].full_weight().shape == (5, 4) and cell.r[0].full_weight().shape == (4, 5)
    plain = MogrifierLSTMCell(5, 4, rounds=0)
    assert len(plain.q) == 0 and len(plain.r) == 0


@pytest.mark.parametrize("rounds", [0, 3])
def test_lstm_step_is_a_standard_lstm_on_the_mogrified_inputs(rounds: int) -> None:
    torch.manual_seed(0)
    cell = MogrifierLSTMCell(6, 4, rounds=rounds)
    ref = torch.nn.LSTMCell(6, 4)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.weight[:, :6])
        ref.weight_hh.copy_(cell.weight[:, 6:])
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h, c = torch.randn(3, 6), torch.randn(3, 4), torch.randn(3, 4)
    got_h, got_c = cell(x, (h, c))
    xm, hm = cell.mogrify(x, h)
    want_h, want_c = ref(xm, (hm, c))
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_c, want_c)


def test_low_rank_factorisation_shapes_and_rank() -> None:
    cell = MogrifierLSTMCell(20, 8, rounds=4, rank=3)
    for q in cell.q:  # hidden -> input
        assert q.left.shape == (20, 3) and q.right.shape == (3, 8) and q.weight is None
        assert q.full_weight().shape == (20, 8)
        assert torch.linalg.matrix_rank(q.full_weight().detach()) <= 3
    for r in cell.r:  # input -> hidden
        assert r.left.shape == (8, 3) and r.right.shape == (3, 20)
    full = MogrifierLSTMCell(20, 8, rounds=4)
    n_low = sum(p.numel() for p in cell.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    assert n_low < n_full


def test_low_rank_projection_equals_its_product_matrix() -> None:
    torch.manual_seed(0)
    proj = GateProjection(7, 5, rank=2)
    z = torch.randn(4, 7)
    torch.testing.assert_close(proj(z), z @ (proj.left @ proj.right).T + proj.bias)


def test_stack_freezes_state_on_masked_steps() -> None:
    torch.manual_seed(0)
    stack = MogrifierLSTM(5, 4, 2, rounds=3, residual_layers=True).eval()
    x = torch.randn(2, 6, 5)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    out, (h_n, c_n) = stack(x, mask)
    assert out.shape == (2, 6, 4) and h_n.shape == (2, 2, 4) and c_n.shape == (2, 2, 4)
    _, (h_short, c_short) = stack(x[1:, :3])
    torch.testing.assert_close(h_n[:, 1:], h_short)
    torch.testing.assert_close(c_n[:, 1:], c_short)
    # Without the mask the padded steps would have moved the state.
    _, (h_free, _) = stack(x)
    assert not torch.allclose(h_free[:, 1:], h_short)


def test_residual_layers_project_only_when_sizes_differ() -> None:
    assert isinstance(MogrifierLSTM(5, 4, 2, residual_layers=True).skip, torch.nn.Linear)
    assert isinstance(MogrifierLSTM(4, 4, 2, residual_layers=True).skip, torch.nn.Identity)
    assert MogrifierLSTM(5, 4, 2, residual_layers=False).skip is None


def test_residual_layer_output_is_h_plus_layer_input() -> None:
    torch.manual_seed(0)
    stack = MogrifierLSTM(4, 4, 1, rounds=2, residual_layers=True)
    plain = MogrifierLSTM(4, 4, 1, rounds=2, residual_layers=False)
    plain.load_state_dict(stack.state_dict())
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(stack(x)[0], plain(x)[0] + x)


def first_layer_grad_norm(seed: int, residual_layers: bool, layers: int = 8) -> float:
    torch.manual_seed(seed)
    stack = MogrifierLSTM(16, 16, layers, rounds=3, residual_gate=True, residual_layers=residual_layers)
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(4, 6, 16, generator=g)  # (B, T, F)
    readout = torch.randn(16, generator=g)
    out, _ = stack(x)  # (B, T, H)
    # A fixed linear readout keeps dLoss/dout on the same scale for both stacks.
    (out[:, -1] @ readout).sum().backward()
    grads = [p.grad.flatten() for p in stack.cells[0].parameters()]
    return float(torch.cat(grads).norm())


def test_residual_layers_carry_more_gradient_to_the_first_layer() -> None:
    """8 stacked layers: residual connections keep the first layer's gradient alive."""
    for seed in range(3):
        res = first_layer_grad_norm(seed, True)
        plain = first_layer_grad_norm(seed, False)
        print(
            f"seed {seed}: first-layer grad norm residual {res:.3e} plain {plain:.3e} ratio {res / plain:.1f}"
        )
        # Measured ratios were 5.5-19 over seeds 0-7; 2 leaves a wide margin.
        assert res > 2.0 * plain


R2 = np.array([[0.1, 0.6, -0.3], [0.2, -0.5, 0.7]])  # (2, 3) input -> hidden
BR2 = np.array([0.05, -0.1])


def test_h_first_order_matches_the_papers_equations() -> None:
    """Paper eqs. 8-11: round 1 gates h with x (R^1), round 2 gates x with the new h (Q^1),
    round 3 gates h again (R^2); residual form v + 2 sigma(.) v."""
    cell = MogrifierLSTMCell(3, 2, rounds=3, residual_gate=True, gate_order="h_first").double()
    assert len(cell.r) == 2 and len(cell.q) == 1
    with torch.no_grad():
        for proj, (w, b) in zip(cell.r, [(R1, BR1), (R2, BR2)], strict=True):
            proj.weight.copy_(torch.from_numpy(w))
            proj.bias.copy_(torch.from_numpy(b))
        cell.q[0].weight.copy_(torch.from_numpy(Q1))
        cell.q[0].bias.copy_(torch.from_numpy(BQ1))
    x, h = cell.mogrify(torch.from_numpy(X), torch.from_numpy(H))
    h1 = H + 2.0 * sigmoid(X @ R1.T + BR1) * H
    x2 = X + 2.0 * sigmoid(h1 @ Q1.T + BQ1) * X
    h3 = h1 + 2.0 * sigmoid(x2 @ R2.T + BR2) * h1
    np.testing.assert_allclose(h.detach().numpy(), h3, rtol=1e-12)
    np.testing.assert_allclose(x.detach().numpy(), x2, rtol=1e-12)
    # and it differs from Melis' order on the same inputs (the option changes something)
    melis = hand_cell(3, True)
    _, hm = melis.mogrify(torch.from_numpy(X), torch.from_numpy(H))
    assert not np.allclose(hm.detach().numpy(), h3)


def test_ablation_models_force_their_flags() -> None:
    from mmfer.config import ModelConfig
    from mmfer.models import create_model

    cfg = ModelConfig(residual_gate=False, residual_layers=False)
    gate = create_model("rmlstm_gate", in_features=5, num_classes=3, cfg=cfg)
    assert gate.cfg.residual_gate and not gate.cfg.residual_layers
    layers = create_model("rmlstm_layers", in_features=5, num_classes=3, cfg=cfg)
    assert layers.cfg.residual_layers and not layers.cfg.residual_gate
    hfirst = create_model("rmlstm_hfirst", in_features=5, num_classes=3, cfg=cfg)
    assert hfirst.cfg.gate_order == "h_first" and hfirst.cfg.residual_gate and hfirst.cfg.residual_layers
