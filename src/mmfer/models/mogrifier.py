"""Mogrifier LSTM cell and layer stack (Melis et al. 2020; paper section 2.5, eqs. 8-11).

Before each LSTM step the input ``x`` and the previous output ``h`` gate each
other for ``r`` rounds (``i = 1..r``)::

    odd i : x <- 2 sigma(Q^i h + b_q^i) * x        (plain, Melis et al.)
    even i: h <- 2 sigma(R^i x + b_r^i) * h

With ``residual_gate=True`` each round keeps the un-gated value as well, the
paper's form ``x' = x + 2 sigma(.) * x`` (eqs. 9 and 11, with the biases
``b_u``, ``b_v`` of eqs. 8 and 10). The paper's eqs. 8-11 describe two rounds
that gate ``h`` first (from ``x``) and then ``x`` (from ``h'``); we keep Melis'
order (``x`` first) for any number of rounds, so ``Q``/``R`` correspond to the
paper's ``W_v``/``W_u``.

``Q^i`` maps hidden -> input size and ``R^i`` input -> hidden size; with
``rank > 0`` each is factorised ``Q = Q_left @ Q_right`` (``(out, rank) @
(rank, in)``) to cut parameters for wide fused inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["GateProjection", "MogrifierLSTM", "MogrifierLSTMCell"]


class GateProjection(nn.Module):
    """Affine map ``z -> W z + b`` with ``W`` full or low-rank ``W = left @ right``.

    Parameters
    ----------
    in_features, out_features
        Sizes of ``z`` and of the result.
    rank
        0 = full ``W (out, in)``; ``> 0`` = ``left (out, rank) @ right (rank, in)``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 0) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        bound = 1.0 / math.sqrt(in_features)
        self.weight: nn.Parameter | None
        self.left: nn.Parameter | None
        self.right: nn.Parameter | None
        if rank > 0:
            self.weight = None
            self.left = nn.Parameter(torch.empty(out_features, rank).uniform_(-1, 1) / math.sqrt(rank))
            self.right = nn.Parameter(torch.empty(rank, in_features).uniform_(-bound, bound))
        else:
            self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
            self.left = self.right = None
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def full_weight(self) -> Tensor:
        """The effective ``(out, in)`` matrix ``W``."""
        if self.weight is not None:
            return self.weight
        assert self.left is not None and self.right is not None
        return self.left @ self.right

    def forward(self, z: Tensor) -> Tensor:
        """``z (B, in) -> (B, out)``."""
        if self.weight is not None:
            return F.linear(z, self.weight, self.bias)
        # Two thin matmuls: cheaper than forming the (out, in) product each step.
        return F.linear(F.linear(z, self.right), self.left, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


class MogrifierLSTMCell(nn.Module):
    """One mogrifier LSTM step.

    Parameters
    ----------
    input_size
        Size of ``x``.
    hidden_size
        Size of ``h`` and ``c``.
    rounds
        Mogrifier rounds ``r`` (0 = a plain LSTM cell).
    rank
        Rank of ``Q``/``R`` (0 = full rank).
    residual_gate
        Paper's form ``x' = x + 2 sigma(.) * x`` instead of ``x' = 2 sigma(.) * x``.

    Attributes
    ----------
    q : nn.ModuleList
        ``ceil(r/2)`` projections hidden -> input (rounds 1, 3, 5, ...).
    r : nn.ModuleList
        ``floor(r/2)`` projections input -> hidden (rounds 2, 4, ...).
    weight : nn.Parameter
        ``(4 * hidden, input + hidden)`` fused LSTM gate weights, gate order i, f, g, o.
    bias : nn.Parameter
        ``(4 * hidden,)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rounds: int = 5,
        rank: int = 0,
        residual_gate: bool = True,
        gate_order: str = "x_first",
    ) -> None:
        super().__init__()
        if gate_order not in ("x_first", "h_first"):
            raise ValueError(f"gate_order must be 'x_first' or 'h_first', got {gate_order!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rounds = rounds
        self.residual_gate = residual_gate
        self.gate_order = gate_order
        # x_first: odd rounds gate x (Q: hidden -> input), even rounds gate h (R: input -> hidden);
        # h_first swaps the roles, so it needs ceil(r/2) R's and floor(r/2) Q's.
        n_x = (rounds + 1) // 2 if gate_order == "x_first" else rounds // 2
        self.q = nn.ModuleList(GateProjection(hidden_size, input_size, rank) for _ in range(n_x))
        self.r = nn.ModuleList(GateProjection(input_size, hidden_size, rank) for _ in range(rounds - n_x))
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.LSTM's initialisation
        self.weight = nn.Parameter(
            torch.empty(4 * hidden_size, input_size + hidden_size).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def _gate(self, value: Tensor, pre: Tensor) -> Tensor:
        """``2 sigma(pre) * value`` (plain) or ``value + 2 sigma(pre) * value`` (residual)."""
        scale = 2.0 * torch.sigmoid(pre)
        if self.residual_gate:
            scale = scale + 1.0
        return value * scale

    def mogrify(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Run the ``r`` mogrifier rounds.

        Parameters
        ----------
        x
            ``(B, input_size)`` input of this step.
        h
            ``(B, hidden_size)`` previous output.

        Returns
        -------
        x, h
            The gated ``x'`` ``(B, input_size)`` and ``h'`` ``(B, hidden_size)``.
        """
        x_first = self.gate_order == "x_first"
        for i in range(1, self.rounds + 1):
            if (i % 2 == 1) == x_first:
                x = self._gate(x, self.q[(i - 1) // 2](h))  # (B, input)
            else:
                h = self._gate(h, self.r[(i - 1) // 2](x))  # (B, hidden)
        return x, h

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step: ``x (B, input)``, ``state = (h, c)`` each ``(B, hidden)`` -> new ``(h, c)``."""
        h, c = state
        x, h = self.mogrify(x, h)
        # One fused matmul for the four gates.
        gates = F.linear(torch.cat([x, h], dim=1), self.weight, self.bias)  # (B, 4 * hidden)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, hidden)
        h = torch.sigmoid(o) * torch.tanh(c)  # (B, hidden)
        return h, c

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, rounds={self.rounds}, "
            f"residual_gate={self.residual_gate}, gate_order={self.gate_order}"
        )


class MogrifierLSTM(nn.Module):
    """Stack of :class:`MogrifierLSTMCell` layers run over time (batch first).

    Parameters
    ----------
    input_size, hidden_size
        Sizes of the input features and of every layer's state.
    num_layers
        Stacked layers.
    rounds, rank, residual_gate, gate_order
        Passed to every cell.
    residual_layers
        Output of layer ``l`` = its ``h`` + its input (layer 1's input goes
        through a bias-free linear projection when ``input_size != hidden_size``),
        so gradients reach the lower layers of deep stacks.
    dropout
        Dropout applied to the input of every layer but the first.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        rounds: int = 5,
        rank: int = 0,
        residual_gate: bool = True,
        residual_layers: bool = False,
        dropout: float = 0.0,
        gate_order: str = "x_first",
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.residual_layers = residual_layers
        self.cells = nn.ModuleList(
            MogrifierLSTMCell(
                input_size if layer == 0 else hidden_size,
                hidden_size,
                rounds=rounds,
                rank=rank,
                residual_gate=residual_gate,
                gate_order=gate_order,
            )
            for layer in range(num_layers)
        )
        self.skip: nn.Module | None = None
        if residual_layers:
            self.skip = (
                nn.Linear(input_size, hidden_size, bias=False) if input_size != hidden_size else nn.Identity()
            )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the stack over a sequence.

        Parameters
        ----------
        x
            ``(B, T, input_size)``.
        mask
            ``(B, T)`` bool; where False the state is frozen (carried over
            unchanged), so padded steps never leak into later ones.
            ``None`` = all valid.
        state
            Initial ``(h0, c0)``, each ``(num_layers, B, hidden)``; default zeros.

        Returns
        -------
        out
            ``(B, T, hidden)`` last layer's output per step (at a masked step:
            the frozen state, plus the residual input when ``residual_layers``).
        (h_n, c_n)
            Final states, each ``(num_layers, B, hidden)``.
        """
        batch, steps, _ = x.shape
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        step_mask = None if mask is None else mask.unsqueeze(-1)  # (B, T, 1)
        layer_in = x  # (B, T, in)
        h_last, c_last = [], []
        for layer, cell in enumerate(self.cells):
            if layer > 0:
                layer_in = self.dropout(layer_in)
            h, c = state[0][layer], state[1][layer]  # (B, hidden) each
            outs = []
            for t in range(steps):
                h_new, c_new = cell(layer_in[:, t], (h, c))
                if step_mask is None:
                    h, c = h_new, c_new
                else:
                    valid = step_mask[:, t]  # (B, 1)
                    h = torch.where(valid, h_new, h)
                    c = torch.where(valid, c_new, c)
                outs.append(h)
            out = torch.stack(outs, dim=1)  # (B, T, hidden)
            if self.skip is not None:
                out = out + (self.skip(layer_in) if layer == 0 else layer_in)
            h_last.append(h)
            c_last.append(c)
            layer_in = out
        return layer_in, (torch.stack(h_last), torch.stack(c_last))

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, residual_layers={self.residual_layers}"
