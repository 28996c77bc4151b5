"""Recurrent sequence classifiers, ``rnn`` (vanilla tanh RNN) and ``lstm``.

Inputs are int64 token ids of shape ``(B, L)`` (``input_shape`` is ``(L,)``); tokens are embedded
(or one-hot encoded), run through the recurrent layers, and the last time step's hidden state of
the top layer goes through a Linear to the class logits. Any sequence length works.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models._common import check_int


class RecurrentClassifier(nn.Module):
    """Embedding (or one-hot) -> recurrent layers -> Linear on the last time step.

    Subclasses pick the recurrent layer. Options:
        vocab_size: number of distinct token ids (0 .. vocab_size - 1).
        embedding: embedding width; ``None`` or 0 feeds one-hot vectors of length vocab_size.
        hidden: hidden state size.
        layers: stacked recurrent layers.
    """

    #: ``summarize`` feeds models int64 token ids when they declare it here.
    input_dtype: ClassVar[torch.dtype] = torch.long
    #: The recurrent layer class; batch_first is set, so it takes (B, L, features).
    cell: ClassVar[type[nn.RNN] | type[nn.LSTM]]

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        vocab_size: int = 10,
        embedding: int | None = 32,
        hidden: int = 128,
        layers: int = 1,
    ) -> None:
        super().__init__()
        self.vocab_size = check_int("vocab_size", vocab_size, min_value=1)
        if embedding is not None and (
            not isinstance(embedding, int) or isinstance(embedding, bool) or embedding < 0
        ):
            raise ConfigError(
                f"got {embedding!r}; allowed: an integer >= 1, or 0 / none for one-hot tokens",
                path="model.embedding",
            )
        hidden = check_int("hidden", hidden, min_value=1)
        layers = check_int("layers", layers, min_value=1)

        if embedding:
            self.embed: nn.Module | None = nn.Embedding(self.vocab_size, embedding)
            features = embedding
        else:
            self.embed = None
            features = self.vocab_size
        self.rnn = self.cell(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(tokens)
        else:
            # Match the parameters' dtype so the model also runs after .double() / .half().
            x = F.one_hot(tokens, self.vocab_size).to(self.fc.weight.dtype)
        outputs, _ = self.rnn(x)  # (B, L, hidden): the top layer's state at every step
        return self.fc(outputs[:, -1])


class RNNClassifier(RecurrentClassifier):
    """Elman RNN with tanh non-linearity."""

    cell = nn.RNN


class LSTMClassifier(RecurrentClassifier):
    """LSTM."""

    cell = nn.LSTM
