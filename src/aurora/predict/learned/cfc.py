"""A liquid-network risk model: a closed-form continuous-time (CfC) cell from ``ncps`` on CPU torch.

Optional: it needs the ``lnn`` extra (``pip install 'aurora-aiops[lnn]'``, or ``make setup-lnn`` in a
checkout: ``ncps`` and ``torch==2.13.0``, the CPU build). ``available()`` says whether it can run;
``require()`` raises ``MissingExtra`` with how to install it.

Input: for each (series, evaluation), the feature vectors (``features.FEATURES``, standardised with the
training samples' weighted mean and sd) of the last ``length`` evaluations ``stride`` apart (default 24
vectors 2 min apart: the last 46 minutes), oldest first, from a zero state (``features.sequences``;
before a run's first evaluation its first vector is repeated). Output: the CfC's projection of its last
state (``proj_size=1``) is the logit of P(breach within 4 h).

Training: ``units`` (24) hidden units with the default backbone, Adam (learning rate 3e-3), weighted
binary cross-entropy (the samples' inverse sampling rates, normalised), ``epochs`` (6) epochs of
mini-batches of 256 in an order drawn from ``torch.Generator().manual_seed(seed)``, after
``torch.manual_seed(seed)`` for the initial weights, on ``threads`` (1) CPU thread: the same data and
seed give the same weights and outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurora.predict.learned.features import FEATURES, sequences
from aurora.predict.learned.models import RiskModel

INSTALL_HINT = ("the cfc model needs the optional extra 'lnn' (ncps on the CPU build of torch 2.13.0): "
                "pip install 'aurora-aiops[lnn]' (in a checkout: make setup-lnn)")


class MissingExtra(ValueError):
    """An optional dependency is not installed (the message says how to install it)."""


def available() -> bool:
    try:
        import ncps.torch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    if not available():
        raise MissingExtra(INSTALL_HINT)


class CfcModel(RiskModel):
    name = "cfc"

    def __init__(self, units: int = 24, length: int = 24, stride: int = 2, epochs: int = 6, batch: int = 256,
                 lr: float = 3e-3, seed: int = 0, threads: int = 1) -> None:
        require()
        self.units, self.length, self.stride, self.epochs = units, length, stride, epochs
        self.batch, self.lr, self.seed, self.threads = batch, lr, seed, threads
        self.mean = np.zeros(len(FEATURES))
        self.std = np.ones(len(FEATURES))
        self.net: Any = None
        self.losses: list[float] = []

    def _build(self, n_features: int) -> Any:
        import torch
        from ncps.torch import CfC

        torch.manual_seed(self.seed)
        return CfC(n_features, self.units, proj_size=1, return_sequences=False, batch_first=True)

    def fit_sequences(self, seqs: np.ndarray, y: np.ndarray, weight: np.ndarray) -> CfcModel:
        """Fit on ``samples x length x features`` sequences, labels and weights."""
        import torch

        torch.set_num_threads(self.threads)
        flat = seqs[:, -1, :]
        w = weight / weight.mean()
        self.mean = np.average(flat, axis=0, weights=w)
        self.std = np.sqrt(np.average((flat - self.mean) ** 2, axis=0, weights=w))
        self.std = np.where(self.std > 1e-12, self.std, 1.0)
        x = torch.from_numpy(((seqs - self.mean) / self.std).astype(np.float32))
        yt = torch.from_numpy(y.astype(np.float32))
        wt = torch.from_numpy(w.astype(np.float32))
        self.net = self._build(seqs.shape[2])
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        self.losses = []
        self.net.train()
        for _ in range(self.epochs):
            order = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for i in range(0, x.shape[0], self.batch):
                b = order[i:i + self.batch]
                logit, _ = self.net(x[b])
                loss = (loss_fn(logit[:, 0], yt[b]) * wt[b]).sum() / wt[b].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            self.losses.append(total / x.shape[0])
        self.net.eval()
        return self

    def fit(self, data: Any) -> CfcModel:
        return self.fit_sequences(data.sequences(self.length, self.stride), data.y, data.weight)

    def predict_sequences(self, seqs: np.ndarray, chunk: int = 8192) -> np.ndarray:
        import torch

        torch.set_num_threads(self.threads)
        out = np.empty(seqs.shape[0])
        with torch.no_grad():
            for i in range(0, seqs.shape[0], chunk):
                x = torch.from_numpy(((seqs[i:i + chunk] - self.mean) / self.std).astype(np.float32))
                logit, _ = self.net(x)
                out[i:i + chunk] = torch.sigmoid(logit[:, 0]).double().numpy()
        return out

    def predict_run(self, feats: np.ndarray) -> np.ndarray:
        e, s, _ = feats.shape
        if e * s == 0:
            return np.zeros((e, s))
        p = np.empty((e, s))
        step = max(1, 8192 // max(s, 1))  # evaluations per chunk: bounded memory
        for a in range(0, e, step):
            at = np.arange(a, min(a + step, e))
            p[at] = self.predict_sequences(sequences(feats, self.length, self.stride, at)).reshape(at.size, s)
        return p

    def params(self) -> dict[str, Any]:
        return {"units": self.units, "length": self.length, "stride": self.stride, "epochs": self.epochs,
                "batch": self.batch, "lr": self.lr, "seed": self.seed, "threads": self.threads,
                "epoch_losses": [round(v, 5) for v in self.losses]}
