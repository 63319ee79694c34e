"""Flow-matching couplings: paths, targets, OT plans, bridge partners and label dropout."""
import itertools
import warnings

import numpy as np
import pytest
import torch

from MedShiftLib.engine.couplings import (
    COUPLINGS,
    FlowSample,
    IndependentCoupling,
    MinibatchOTCoupling,
    SchrodingerBridgeCoupling,
    draw_partners,
    drop_labels,
    entropic_ot_plan,
    make_coupling,
    ot_plan,
    squared_distances,
    standard_normal_like,
)

STRAIGHT = [IndependentCoupling, MinibatchOTCoupling]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(batch: int = 6, size: int = 8, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """A batch of images in [-1, 1] that are not noise-like (a bright offset plus texture)."""
    g = gen(1000 + seed)
    return torch.tanh(0.8 + 0.5 * torch.randn(batch, 1, size, size, generator=g, dtype=dtype))


def rows(x: torch.Tensor) -> list[bytes]:
    return [r.numpy().tobytes() for r in x.reshape(x.shape[0], -1)]


@pytest.mark.parametrize("name", COUPLINGS)
def test_sample_shapes_finite_deterministic_and_noise_from_the_generator(name):
    x1 = images()
    coupling = make_coupling(name)
    sample = coupling.sample(x1, generator=gen(3))
    assert isinstance(sample, FlowSample)
    assert sample.t.shape == (6,) and sample.x0.shape == sample.x_t.shape == sample.u_t.shape == x1.shape
    assert all(torch.isfinite(v).all() for v in (sample.t, sample.x0, sample.x_t, sample.u_t))
    assert ((sample.t >= 0) & (sample.t < 1)).all() and sample.t.unique().numel() == 6
    again = coupling.sample(x1, generator=gen(3))
    assert all(torch.equal(a, b) for a, b in zip((sample.t, sample.x0, sample.x_t, sample.u_t),
                                                 (again.t, again.x0, again.x_t, again.u_t)))
    assert not torch.equal(coupling.sample(x1, generator=gen(4)).x0, sample.x0)
    # x0 is the noise the generator draws first, re-paired (rows reordered, or resampled for the bridge)
    noise = rows(standard_normal_like(x1, gen(3)))
    assert set(rows(sample.x0)) <= set(noise)
    if name != "schrodinger-bridge":
        assert sorted(rows(sample.x0)) == sorted(noise)


@pytest.mark.parametrize("cls", STRAIGHT)
def test_straight_path_ends_at_noise_and_data(cls):
    x1 = images(dtype=torch.float64)
    coupling = cls()
    start = coupling.sample(x1, generator=gen(5), t=torch.zeros(6, dtype=torch.float64))
    end = coupling.sample(x1, generator=gen(5), t=torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(start.x_t, start.x0, rtol=0, atol=1e-12)
    assert torch.allclose(end.x_t, x1, rtol=0, atol=coupling.sigma_min * end.x0.abs().max().item() + 1e-12)
    assert not torch.allclose(end.x_t, x1, rtol=0, atol=1e-9)  # sigma_min > 0 leaves a small noise share


@pytest.mark.parametrize("cls", STRAIGHT)
def test_straight_path_target_is_the_time_derivative(cls):
    x1 = images(dtype=torch.float64)
    coupling = cls(sigma_min=0.05)
    t = torch.tensor([0.1, 0.25, 0.4, 0.6, 0.75, 0.9], dtype=torch.float64)
    h = 1e-4
    ahead = coupling.sample(x1, generator=gen(6), t=t + h)
    behind = coupling.sample(x1, generator=gen(6), t=t - h)
    here = coupling.sample(x1, generator=gen(6), t=t)
    derivative = (ahead.x_t - behind.x_t) / (2 * h)
    torch.testing.assert_close(here.u_t, derivative, rtol=1e-6, atol=1e-8)


def test_bridge_target_is_the_time_derivative_of_the_noisy_path():
    """With the same partner and bridge noise eps, d/dt [mu_t + sigma sqrt(t(1-t)) eps] equals u_t."""
    x1 = images(dtype=torch.float64)
    coupling = SchrodingerBridgeCoupling(sigma=0.3)
    t = torch.tensor([0.05, 0.2, 0.4, 0.5, 0.7, 0.95], dtype=torch.float64)
    h = 1e-6
    ahead = coupling.sample(x1, generator=gen(7), t=t + h)
    behind = coupling.sample(x1, generator=gen(7), t=t - h)
    here = coupling.sample(x1, generator=gen(7), t=t)
    assert torch.equal(ahead.x0, here.x0) and torch.equal(behind.x0, here.x0)
    torch.testing.assert_close(here.u_t, (ahead.x_t - behind.x_t) / (2 * h), rtol=1e-5, atol=1e-6)
    # at t = 1/2 the drift is the straight one: the bridge noise neither grows nor shrinks
    torch.testing.assert_close(here.u_t[3], x1[3] - here.x0[3])


def test_bridge_noise_has_the_brownian_bridge_variance():
    sigma = 0.4
    x1 = images(batch=4, size=64, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.8], dtype=torch.float64)
    sample = SchrodingerBridgeCoupling(sigma=sigma).sample(x1, generator=gen(8), t=t)
    deviation = sample.x_t - (t.view(-1, 1, 1, 1) * x1 + (1 - t.view(-1, 1, 1, 1)) * sample.x0)
    variance = deviation.flatten(1).var(dim=1)
    torch.testing.assert_close(variance, sigma**2 * t * (1 - t), rtol=0.08, atol=0)


def test_bridge_keeps_times_away_from_the_singular_ends():
    coupling = SchrodingerBridgeCoupling(sigma=0.2, time_epsilon=1e-3)
    sample = coupling.sample(images(batch=2), generator=gen(9), t=torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(sample.t, torch.tensor([1e-3, 1 - 1e-3]))
    assert torch.isfinite(sample.u_t).all()


def test_ot_plan_is_a_scaled_permutation_with_minimal_cost():
    g = gen(12)
    x0, x1 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g) + 0.5
    plan = ot_plan(x0, x1).numpy()
    np.testing.assert_allclose(plan.sum(axis=0), 0.2)
    np.testing.assert_allclose(plan.sum(axis=1), 0.2)
    np.testing.assert_allclose(np.sort(plan, axis=None), [0.0] * 20 + [0.2] * 5, atol=1e-12)
    distance = torch.cdist(x0.double(), x1.double()).numpy()

    def best_permutation(cost):
        return min(itertools.permutations(range(5)), key=lambda p: sum(cost[p[j], j] for j in range(5)))

    best = best_permutation(distance**2)
    # the case tells the squared cost from the plain distance and from keeping the given order
    assert best != best_permutation(distance) and best != tuple(range(5))
    assert tuple(plan.argmax(axis=0)) == best
    assert (plan * distance**2).sum() * 5 == pytest.approx(sum(distance[best[j], j] ** 2 for j in range(5)))


def test_entropic_plan_has_uniform_marginals_and_interpolates_exact_and_independent():
    g = gen(11)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    exact = ot_plan(x0, x1).numpy()
    independent = np.full((6, 6), 1 / 36)
    distance_to_exact = []
    for reg in (1e-3, 1e-1, 1.0, 10.0, 1e4):
        plan = entropic_ot_plan(x0, x1, reg).numpy()
        np.testing.assert_allclose(plan.sum(axis=1), 1 / 6, rtol=1e-3)
        np.testing.assert_allclose(plan.sum(axis=0), 1 / 6, rtol=1e-3)
        distance_to_exact.append(np.abs(plan - exact).sum())
        if reg == 1e-3:
            assert distance_to_exact[-1] < 1e-3
        if reg == 1e4:
            np.testing.assert_allclose(plan, independent, rtol=1e-3)
    assert distance_to_exact == sorted(distance_to_exact)


def test_entropic_plan_converges_on_image_sized_batches_at_the_bridge_reg():
    """Raw image costs are thousands with spreads >> 2 sigma^2; the solver must still meet the marginals."""
    x1 = images(batch=32, size=32)
    x0 = standard_normal_like(x1, gen(12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = entropic_ot_plan(x0, x1, reg=2 * 0.1**2).numpy()
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 32, rtol=1e-2)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 32, rtol=1e-2)


def test_minibatch_ot_shortens_the_pairing_compared_with_independent():
    costs = {"independent": [], "ot": [], "schrodinger-bridge": []}
    for seed in range(5):
        x1 = images(batch=16, size=8, seed=seed)
        for name in costs:
            x0 = make_coupling(name).sample(x1, generator=gen(seed)).x0
            costs[name].append(((x0 - x1) ** 2).flatten(1).sum(1).mean().item())
    # same noise draw per seed: OT is the best permutation, identity included
    assert all(o <= i + 1e-6 for o, i in zip(costs["ot"], costs["independent"]))
    assert np.mean(costs["ot"]) < 0.97 * np.mean(costs["independent"])
    assert np.mean(costs["schrodinger-bridge"]) < np.mean(costs["independent"])


def test_drawn_partners_follow_the_plan_columns():
    plan = np.array([[0.30, 0.02, 0.10], [0.05, 0.20, 0.05], [0.00, 0.08, 0.20]])
    g = gen(13)
    draws = torch.stack([draw_partners(torch.from_numpy(plan), g) for _ in range(4000)])
    assert draws.shape == (4000, 3)
    for j in range(3):
        frequency = torch.bincount(draws[:, j], minlength=3).double() / 4000
        expected = torch.from_numpy(plan[:, j] / plan[:, j].sum())
        torch.testing.assert_close(frequency, expected, rtol=0, atol=0.03)
    assert (draws[:, 0] != 2).all()  # zero-probability partner is never drawn


@pytest.mark.slow
def test_bridge_coupling_samples_partners_from_the_entropic_plan():
    x1 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).view(3, 1, 1, 2)
    coupling = SchrodingerBridgeCoupling(sigma=0.6)
    x0 = torch.tensor([[0.1, 0.0], [0.9, 0.2], [0.3, 0.7]]).view(3, 1, 1, 2)
    plan = entropic_ot_plan(x0, x1, coupling.reg)
    expected = plan / plan.sum(dim=0, keepdim=True)
    g = gen(14)
    counts = torch.zeros(3, 3, dtype=torch.float64)
    for _ in range(400):
        paired = coupling.pair_noise(x0, x1, g)
        partner = torch.cdist(paired.flatten(1), x0.flatten(1)).argmin(dim=1)
        counts[partner, torch.arange(3)] += 1
    assert (expected < 0.9).all()  # a genuinely stochastic pairing
    torch.testing.assert_close(counts / 400, expected, rtol=0, atol=0.08)


def test_label_dropout_rate_and_null_label():
    labels = torch.randint(0, 5, (100_000,), generator=gen(15))
    dropped = drop_labels(labels, null_label=5, p=0.2, generator=gen(16))
    changed = dropped != labels
    assert changed.double().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (dropped[changed] == 5).all()
    assert torch.equal(dropped, drop_labels(labels, 5, 0.2, generator=gen(16)))
    assert torch.equal(drop_labels(labels, 5, 0.0, generator=gen(17)), labels)
    assert (drop_labels(labels, 5, 1.0, generator=gen(17)) == 5).all()
    with pytest.raises(ValueError, match="probability"):
        drop_labels(labels, 5, 1.5)


def test_make_coupling_builds_each_name_and_rejects_unknown_ones():
    assert type(make_coupling("independent")) is IndependentCoupling
    assert type(make_coupling("ot")) is MinibatchOTCoupling
    bridge = make_coupling("schrodinger-bridge", sigma=0.25)
    assert isinstance(bridge, SchrodingerBridgeCoupling) and bridge.reg == pytest.approx(2 * 0.25**2)
    with pytest.raises(ValueError) as error:
        make_coupling("rectified")
    assert all(name in str(error.value) for name in COUPLINGS)
    with pytest.raises(ValueError, match="sigma"):
        make_coupling("schrodinger-bridge", sigma=0.0)


def test_given_times_must_match_the_batch():
    with pytest.raises(ValueError, match="shape"):
        IndependentCoupling().sample(images(batch=4), generator=gen(18), t=torch.rand(3))


@pytest.mark.cuda
@pytest.mark.parametrize("name", COUPLINGS)
def test_batch_on_the_gpu_gives_the_cpu_sample(name):
    x1 = images()
    coupling = make_coupling(name)
    on_cpu = coupling.sample(x1, generator=gen(19))
    on_gpu = coupling.sample(x1.cuda(), generator=gen(19))
    assert on_gpu.x_t.device.type == "cuda" and on_gpu.t.device.type == "cuda"
    for a, b in zip((on_cpu.t, on_cpu.x0, on_cpu.x_t, on_cpu.u_t), (on_gpu.t, on_gpu.x0, on_gpu.x_t, on_gpu.u_t)):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5)


def _pot():
    return pytest.importorskip("ot", reason="POT (the reference solver) is not installed")


def test_torch_exact_plan_is_a_permutation_matching_pots_exact_solver():
    ot = _pot()
    same, excess = [], []
    for seed in range(8):
        for batch, size in ((16, 8), (64, 16)):
            x1 = images(batch=batch, size=size, seed=seed)
            x0 = standard_normal_like(x1, gen(100 + seed))
            cost = squared_distances(x0, x1).numpy()
            exact = ot.emd(ot.unif(batch), ot.unif(batch), cost)
            plan = ot_plan(x0, x1)
            assert plan.dtype == torch.float64 and plan.device == x0.device
            partner = plan.numpy().argmax(axis=0)
            assert sorted(partner) == list(range(batch)), "a permutation: every noise sample used once"
            same.append(np.mean(partner == exact.argmax(axis=0)))
            excess.append((plan.numpy() * cost).sum() / (exact * cost).sum() - 1)
    assert min(excess) > -1e-9, "no pairing can beat the exact optimum"
    assert max(excess) < 5e-3 and np.mean(same) > 0.95
    assert np.mean(excess) < 5e-4


def test_torch_entropic_plan_matches_pots_sinkhorn_at_the_bridge_reg():
    ot = _pot()
    x1 = images(batch=32, size=32)
    x0 = standard_normal_like(x1, gen(12))
    cost = squared_distances(x0, x1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ot.sinkhorn(ot.unif(32), ot.unif(32), cost, 0.02, method="sinkhorn_epsilon_scaling",
                                numItermax=200)
    plan = entropic_ot_plan(x0, x1, 0.02).numpy()
    np.testing.assert_allclose(plan, reference, atol=3e-3 / 32)  # 0.3 % of a column's mass
    x0, x1 = torch.randn(6, 2, generator=gen(3)), torch.randn(6, 2, generator=gen(4))
    for reg in (0.1, 1.0, 10.0):  # away from the exact limit too
        reference = ot.sinkhorn(ot.unif(6), ot.unif(6), squared_distances(x0, x1).numpy(), reg, numItermax=100_000,
                                stopThr=1e-12)
        np.testing.assert_allclose(entropic_ot_plan(x0, x1, reg).numpy(), reference, atol=1e-3)  # of 1/6


@pytest.mark.cuda
@pytest.mark.parametrize("name", COUPLINGS)
def test_a_generator_on_the_gpu_keeps_every_draw_and_plan_there_and_is_reproducible(name):
    x1 = images(batch=8).cuda()
    samples = [make_coupling(name).sample(x1, generator=torch.Generator(device="cuda").manual_seed(3))
               for _ in range(2)]
    assert samples[0].x_t.device.type == "cuda"
    assert torch.equal(samples[0].x_t, samples[1].x_t) and torch.equal(samples[0].u_t, samples[1].u_t)


@pytest.mark.cuda
def test_the_graphed_gpu_solve_equals_the_eager_one_and_follows_new_costs():
    from MedShiftLib.engine.couplings import device_log_sinkhorn, log_sinkhorn
    for seed in (1, 2):  # the second replays the graph captured for the first with other costs
        x1 = images(batch=16, size=8, seed=seed).cuda()
        cost = squared_distances(standard_normal_like(x1, gen(seed)), x1)
        torch.testing.assert_close(device_log_sinkhorn(cost, 0.02).exp(), log_sinkhorn(cost, 0.02).exp(),
                                   rtol=0, atol=1e-9)
