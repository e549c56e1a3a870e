"""FlatAdam: torch's Adam on one flat buffer, and the guard rails around its gradient views; BatchSteps,
the training steps CUDA replays from a captured graph (their eager form runs here, on the CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossval._torchutil import CUDA_GRAPHS_ENV, BatchSteps, FlatAdam, make_mlp, pad_batches, seeded_init, use_cuda_graphs
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


def _steps_problem(n: int = 70, bsz: int = 16):
    torch.manual_seed(0)
    model = make_mlp(6, 3, n_layers=3, width=16, activation="relu")
    gen = torch.Generator().manual_seed(1)
    X, y = torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)
    return model, FlatAdam(model.parameters(), lr=0.05), X, y, gen


def test_batch_steps_take_exactly_the_steps_of_the_plain_loop() -> None:
    # Two epochs of 70 rows in batches of 16: the last batch has 6 live rows and 10 padded ones
    # with coefficient 0. BatchSteps (eagerly, as on the CPU; CUDA replays this very step from a
    # graph) must take the plain loop's steps: the same losses up to the first padded step, then
    # the same up to rounding (the padded batch's products are summed in another order).
    n, bsz = 70, 16
    results = []
    for use_steps in (False, True):
        model, opt, X, y, gen = _steps_problem(n, bsz)
        coef_of_row = torch.rand(n, generator=gen)
        loss_fn = lambda idx: F.cross_entropy(model(X[idx]), y[idx], reduction="none")  # noqa: E731
        steps = BatchSteps(loss_fn, opt, n_batches=-(-n // bsz), bsz=bsz, device=X.device, graph=False)
        history = []
        for _ in range(2):
            perm = torch.randperm(n, generator=gen)
            if use_steps:
                idx_pad, live = pad_batches(perm, bsz)
                losses = steps.run_epoch(idx_pad, torch.where(live, coef_of_row[idx_pad], 0.0))
                history.append(losses.reshape(-1)[:n])
            else:
                row_losses = []
                for idx in torch.split(perm, bsz):
                    row_loss = loss_fn(idx)
                    opt.zero_grad()
                    torch.dot(row_loss, coef_of_row[idx]).backward()
                    opt.step()
                    row_losses.append(row_loss.detach())
                history.append(torch.cat(row_losses))
        results.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), torch.stack(history)))
    (params_plain, hist_plain), (params_steps, hist_steps) = results
    assert torch.equal(hist_steps[0], hist_plain[0])
    torch.testing.assert_close(params_steps, params_plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hist_steps, hist_plain, rtol=1e-6, atol=1e-6)
    assert not torch.equal(hist_plain[0], hist_plain[1])  # the network trained between the epochs


def test_a_failed_capture_warns_and_the_epoch_goes_on_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-ins for the CUDA calls, so the fallback runs on the CPU: the warm-up steps run, the
    # capture raises (as it does where an op cannot be captured), and the epoch must go on from
    # the step after the warm-up, ending where an epoch of plain eager steps ends.
    import contextlib

    import lossval._torchutil as tu

    class _Stream:
        def wait_stream(self, other: object) -> None:
            pass

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(tu, "_capture_stream", lambda device: _Stream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", refuse)
    n, bsz = 100, 16
    results = []
    for try_graph in (False, True):
        model, opt, X, y, gen = _steps_problem(n, bsz)
        steps = BatchSteps(lambda idx: F.cross_entropy(model(X[idx]), y[idx], reduction="none"), opt,
                           n_batches=-(-n // bsz), bsz=bsz, device=X.device, graph=False)
        steps.graph = try_graph  # as if on CUDA (the constructor refuses graph=True on the CPU)
        idx_pad, live = pad_batches(torch.randperm(n, generator=gen), bsz)
        with pytest.warns(RuntimeWarning, match="CUDA graph failed") if try_graph else contextlib.nullcontext():
            losses = steps.run_epoch(idx_pad, live / live.sum(dim=1, keepdim=True))
        assert not steps.replayed and not steps.graph and int(steps.counter) == steps.n_batches
        results.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), losses))
    assert torch.equal(results[1][0], results[0][0]) and torch.equal(results[1][1], results[0][1])


def test_batch_steps_capture_only_on_cuda() -> None:
    model, opt, X, y, _ = _steps_problem()
    with pytest.raises(ValueError, match="needs CUDA"):
        BatchSteps(lambda idx: model(X[idx]).sum(dim=1), opt, n_batches=5, bsz=16, device=X.device, graph=True)


def test_cuda_graphs_are_chosen_for_cuda_only_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, *_ = _steps_problem()
    cuda, many = torch.device("cuda"), BatchSteps.WARMUP_STEPS + 1
    assert not use_cuda_graphs(torch.device("cpu"), opt, many)
    assert use_cuda_graphs(cuda, opt, many) == opt.capturable  # the decision only (no CUDA needed to make it)
    assert not use_cuda_graphs(cuda, opt, BatchSteps.WARMUP_STEPS)  # too few steps to be worth a capture
    assert not use_cuda_graphs(cuda, torch.optim.Adam(model.parameters()), many)
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "0")
    assert not use_cuda_graphs(cuda, opt, many)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run by benchmarks/gpu_check.sh)")
def test_batch_steps_replayed_from_a_cuda_graph_match_the_eager_steps() -> None:
    n, bsz = 300, 32
    results = []
    for graph in (False, True):
        model, opt, X, y, gen = _steps_problem(n, bsz)
        model.cuda()
        opt = FlatAdam(model.parameters(), lr=0.05)
        X, y = X.cuda(), y.cuda()
        steps = BatchSteps(lambda idx: F.cross_entropy(model(X[idx]), y[idx], reduction="none"), opt,
                           n_batches=-(-n // bsz), bsz=bsz, device=X.device, graph=graph)
        losses = []
        for _ in range(3):
            idx_pad, live = pad_batches(torch.randperm(n, generator=gen).cuda(), bsz)
            losses.append(steps.run_epoch(idx_pad, live / live.sum(dim=1, keepdim=True)))
        assert steps.replayed == graph
        results.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), torch.stack(losses)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-5)


def test_fits_leave_the_callers_random_generators_alone(monkeypatch) -> None:
    """torch.manual_seed inside fork_rng(devices=[]) reseeded every CUDA generator and left it so."""
    import numpy as np

    from lossval import LossVal
    from lossval.retrain import fit_model

    reseeded: list[str] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(f"cuda {seed}"))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda seed: reseeded.append(f"mps {seed}"))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)).astype(np.float32), rng.integers(0, 2, 60)
    torch.manual_seed(123)  # (before the patches' effect matters: the caller's own seeding)
    reseeded.clear()
    state = torch.get_rng_state()
    LossVal(epochs=1, seed=7, device="cpu").fit(X[:40], y[:40], X[40:], y[40:])
    fit_model(X, y, task="classification", n_classes=2, epochs=1, seed=7, device="cpu")
    assert reseeded == [] and torch.equal(torch.get_rng_state(), state)
    with seeded_init(7):  # inside, the CPU generator is seeded as torch.manual_seed(7) seeds it
        inside = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))
