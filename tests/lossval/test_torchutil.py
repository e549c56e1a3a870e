"""FlatAdam: torch's Adam on one flat buffer, and the guard rails around its gradient views."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossval._torchutil import FlatAdam, make_mlp
from lossval.errors import ConfigError


def _train(opt_kind: str, fused: bool | None = None, steps: int = 25) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(0)
    model = make_mlp(6, 3, n_layers=3, width=16, activation="tanh")
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(64, 6, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    if opt_kind == "flat":
        opt = FlatAdam(model.parameters(), lr=0.05, fused=fused)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(steps):
        idx = torch.arange(step % 4 * 16, step % 4 * 16 + 16)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        if opt_kind == "flat":
            opt.zero_grad()
        else:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    if opt_kind == "flat":
        opt.release()
    return model, losses


@pytest.mark.parametrize("fused", [True, False])
def test_flat_adam_takes_the_same_steps_as_torch_adam(fused: bool) -> None:
    ref_model, ref_losses = _train("torch")
    model, losses = _train("flat", fused=fused)
    assert losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert ref_losses[-1] < ref_losses[0]  # it trained: the comparison is not between two no-ops


def test_backward_accumulates_into_the_flat_gradient_buffer() -> None:
    model = make_mlp(4, 2, n_layers=2, width=5, activation="relu")
    opt = FlatAdam(model.parameters(), lr=0.1)
    out = model(torch.randn(8, 4)).sum()
    out.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert expected.abs().sum() > 0
    assert torch.equal(opt.grad, expected)
    assert all(p.grad.data_ptr() >= opt.grad.data_ptr() for p in model.parameters())
    opt.zero_grad()
    assert float(opt.grad.abs().sum()) == 0.0 and all(float(p.grad.abs().sum()) == 0.0 for p in model.parameters())


def test_step_refuses_gradients_detached_from_the_buffer() -> None:
    model = make_mlp(4, 2, n_layers=2, width=5, activation="relu")
    opt = FlatAdam(model.parameters(), lr=0.1)
    model.zero_grad(set_to_none=True)
    model(torch.randn(8, 4)).sum().backward()
    with pytest.raises(RuntimeError, match="zero_grad"):
        opt.step()


def test_release_gives_parameters_their_own_storage() -> None:
    model = make_mlp(4, 2, n_layers=2, width=5, activation="relu")
    opt = FlatAdam(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    opt.release()
    ptrs = {p.data_ptr() for p in model.parameters()}
    assert len(ptrs) == len(before)
    assert all(p.grad is None for p in model.parameters())
    opt.flat.zero_()  # the old buffer no longer backs the network
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_flat_adam_rejects_what_it_cannot_flatten() -> None:
    model = make_mlp(4, 2, n_layers=2, width=5, activation="relu")
    with pytest.raises(ConfigError, match="twice"):
        FlatAdam([*model.parameters(), model[0].weight], lr=0.1)
    with pytest.raises(ConfigError, match="no trainable"):
        FlatAdam([torch.zeros(3)], lr=0.1)  # requires_grad False: nothing to train
    with pytest.raises(ConfigError, match="one dtype"):
        FlatAdam([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=0.1)


def test_progress_off_a_terminal_is_a_plain_line_now_and_then() -> None:
    import io

    from lossval._torchutil import ProgressBar

    log = io.StringIO()  # not a terminal: CI, cron, a log file
    bar = ProgressBar(4, label="LossVal", stream=log, every_s=0.0)
    for _ in range(4):
        bar.update(info="loss 0.5")
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("LossVal: 1/4 after 0 s, about") and "\r" not in log.getvalue()
    quiet = io.StringIO()
    short = ProgressBar(4, label="LossVal", stream=quiet)  # a fit shorter than every_s says nothing there
    for _ in range(4):
        short.update()
    short.close()
    assert quiet.getvalue() == ""
    silent = io.StringIO()
    ProgressBar(4, label="LossVal", stream=silent, enabled=False, every_s=0.0).update()
    assert silent.getvalue() == ""


def test_the_largest_distance_is_exact_in_chunks_and_reports_each_chunk() -> None:
    import io

    from lossval._torchutil import ProgressBar
    from lossval.valuation import _max_distance

    gen = torch.Generator().manual_seed(0)
    Z, Z_val = torch.randn(25, 3, generator=gen), torch.randn(7, 3, generator=gen)
    Z[13] = 40.0  # the farthest row sits in the second chunk
    log = io.StringIO()
    got = _max_distance(Z, Z_val, chunk=10, progress=ProgressBar(3, label="distance", stream=log, every_s=0.0))
    assert float(got) == float(torch.cdist(Z, Z_val).max())
    assert [line.split(" after")[0] for line in log.getvalue().splitlines()] == ["distance: 1/3", "distance: 2/3"]
