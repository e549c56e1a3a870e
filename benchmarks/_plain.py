"""Unweighted training of LossVal's network: the "plain_loss" baseline and the retraining model.

The same MLP, optimiser, batch size, learning rate and epochs as ``LossVal``'s defaults, but
every row counts equally. It records each row's loss in each epoch, so a row's mean loss over
the last epochs is a detection score, and it scores a trained model on held-out rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lossval import LossVal
from lossval._torchutil import FlatAdam, batch_steps_for, make_adam, make_mlp, per_row_loss, seeded_init

__all__ = ["default_training", "train_plain", "score_model", "score_log_loss", "write_atomic"]


def default_training() -> dict[str, int | float]:
    """Epochs, batch size and learning rate of ``LossVal()``'s defaults (read, not copied)."""
    params = LossVal().get_params()
    return {"epochs": int(params["epochs"]), "batch_size": int(params["batch_size"]), "lr": float(params["lr"])}


def train_plain(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    n_outputs: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    n_layers: int = 3,
    width: int | None = None,
    activation: str | None = None,
    optimizer: str = "flat",
    device: str = "cpu",
) -> tuple[torch.nn.Module, np.ndarray]:
    """Train the MLP unweighted with Adam and record every row's loss in every epoch.

    Args:
        X: Training features ``(n, d)``, already standardised.
        y: Targets ``(n,)``: class indices ``0..n_outputs-1`` or standardised floats.
        task: ``"classification"`` (cross-entropy) or ``"regression"`` (squared error).
        n_outputs: Output units (classes, or 1 for regression).
        epochs: Passes over the rows.
        batch_size: Rows per Adam step.
        lr: Adam learning rate.
        seed: Seeds the initialisation and the batch order.
        n_layers: Linear layers (LossVal default 3).
        width: Hidden width (default 100 classification / 90 regression, as LossVal).
        activation: Default relu (classification) / tanh (regression), as LossVal.
        optimizer: ``"flat"``: :class:`lossval._torchutil.FlatAdam`, the network optimiser
            LossVal itself uses (like for like); ``"torch"``: ``torch.optim.Adam(fused=True)``,
            the loop most users would write (same maths,
            more per-step overhead; the speed benchmark reports both).
        device: Where to train (``"cpu"``, ``"cuda"``...); the loss history comes back on the CPU.

    Returns:
        ``(model, loss_history)``: the trained model (eval mode) and per-row losses
        ``(epochs, n)`` float64.
    """
    width = width or (100 if task == "classification" else 90)
    activation = activation or ("relu" if task == "classification" else "tanh")
    dev = torch.device(device)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=dev)
    if task == "classification":
        yt = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=dev)
    else:
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32, device=dev)
    n = Xt.shape[0]
    with seeded_init(seed):
        model = make_mlp(Xt.shape[1], n_outputs, n_layers=n_layers, width=width, activation=activation)
    model = model.to(dev)
    if optimizer not in ("flat", "torch"):
        raise ValueError(f"optimizer must be 'flat' or 'torch', got {optimizer!r}")
    flat = optimizer == "flat"
    opt = FlatAdam(model.parameters(), lr=lr) if flat else make_adam(model.parameters(), lr=lr)
    gen = torch.Generator()  # on the CPU, as in LossVal's fit: the same batches on any device
    gen.manual_seed(int(seed))
    history = torch.zeros((epochs, n), device=dev)
    model.train()

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        return per_row_loss(model(Xt[idx]), yt[idx], task)

    bsz = min(batch_size, n)
    steps = batch_steps_for(loss_of, opt, n=n, bsz=bsz, device=dev)  # as LossVal on CUDA: one graph per step
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(dev, non_blocking=True)
        if steps is not None:
            history[epoch, perm] = steps.run_mean_epoch(perm)
            continue
        for idx in torch.split(perm, bsz):
            per_row = loss_of(idx)
            loss = per_row.mean()
            opt.zero_grad()  # torch.optim's default clears to None; FlatAdam zero-fills its buffer
            loss.backward()
            opt.step()
            history[epoch, idx] = per_row.detach()
    if flat:
        opt.release()
    model.eval()
    return model, history.cpu().numpy().astype(np.float64)


def score_log_loss(model: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """Log-loss of a classifier on ``(X, y)``, as the pipeline's test metric computes it
    (softmax probabilities of the true class, clipped at 1e-12)."""
    with torch.no_grad():
        proba = torch.softmax(model(torch.as_tensor(np.asarray(X), dtype=torch.float32)), dim=1).numpy()
    y = np.asarray(y, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y].astype(np.float64), 1e-12, 1.0))))


def score_model(model: torch.nn.Module, X: np.ndarray, y: np.ndarray, *, task: str) -> float:
    """Accuracy (classification) or R^2 (regression) of ``model`` on ``(X, y)``."""
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(X), dtype=torch.float32))
    if task == "classification":
        return float((out.argmax(dim=1).numpy() == np.asarray(y)).mean())
    pred = out[:, 0].numpy().astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``lossval.io.atomic_write``)."""
    from lossval.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
