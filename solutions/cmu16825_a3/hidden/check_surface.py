"""Part B: sphere tracing (Q5), the eikonal loss and the neural SDF (Q6), the VolSDF density and the
colour head (Q7), the NeuS density (Q8.3)."""
import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, as_array, expect_close, expect_shape, helper_module

box = helper_module(__file__, "a3_sandbox")


# -- Q5 sphere tracing ----------------------------------------------------------------------------------
def _surface(student, sdf):
    cfg = box.config(student, via="implicit", sdf=sdf, feature={"val": [1.0, 1.0, 1.0], "opt": False, "rainbow": False})
    return student.call("implicit", "SDFSurface", cfg, ret="handle")


SPHERE = {"type": "sphere", "center": {"val": [0.0, 0.0, 0.0], "opt": False}, "radius": {"val": 1.0, "opt": False}}
TORUS = {"type": "torus", "center": {"val": [0.0, 0.0, 0.0], "opt": False}, "radii": {"val": [1.0, 0.3], "opt": False}}


def _trace(student, sdf, o, d, far=6.0, near=0.0, iters=128):
    cfg = box.config(student, via="renderer", chunk_size=4096, near=near, far=far, max_iters=iters)
    rend = student.call("renderer", "SphereTracingRenderer", cfg, ret="handle")
    out = student.call(rend, "sphere_tracing", _surface(student, sdf), box.f32(o), box.f32(d))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("sphere_tracing should return (points, mask)", f"got {type(out).__name__}")
    points = as_array(out[0], "the points", allow_nonfinite=True)
    mask = np.asarray(out[1])
    expect_shape(points, o.shape, "the points", "one point per ray: (N, 3)")
    if mask.size != len(o) or mask.dtype.kind not in "bui":
        raise CheckFailed("the mask should hold one boolean per ray: (N, 1)", f"got shape {mask.shape}, dtype {mask.dtype}")
    return points, mask.reshape(-1).astype(bool)


def _sphere_rays(seed, n_hit=10, n_miss=6):
    rng = np.random.default_rng(seed)
    hit_off = rng.uniform(-0.6, 0.6, (n_hit, 2))
    o = np.concatenate([np.column_stack([hit_off, np.full(n_hit, -3.0)]),
                        rng.normal(size=(4, 3))])
    o[n_hit:] *= 3.0 / np.linalg.norm(o[n_hit:], axis=1, keepdims=True)
    aim = np.concatenate([o[:n_hit] * [1, 1, 0], rng.uniform(-0.5, 0.5, (4, 3))])
    d = aim - o
    d[:n_hit] = [0.0, 0.0, 1.0]
    far_off = rng.uniform(1.4, 2.0, (n_miss, 2)) * rng.choice([-1, 1], (n_miss, 2))
    o = np.concatenate([o, np.column_stack([far_off, np.full(n_miss, -3.0)])])
    d = np.concatenate([d, np.tile([0.0, 0.0, 1.0], (n_miss, 1))])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return o, d


@pytest.mark.item("5", weight=3, timeout=60, module="renderer")
def test_sphere_hits(student):
    """rays that hit the unit sphere stop on its surface, at the first intersection"""
    o, d = _sphere_rays(0)
    points, mask = _trace(student, SPHERE, o, d)
    t, hit = box.sphere_hits(o, d)
    box.need(bool(np.all(mask[hit])), "rays that hit the sphere are not in the mask",
             f"{int(np.sum(~mask[hit]))} of {int(hit.sum())} hitting rays have mask False")
    expect_close(points[hit], o[hit] + t[hit, None] * d[hit], "the hit points", atol=2e-3,
                 hint="march each ray by the SDF at its current point until the SDF is (nearly) zero")


@pytest.mark.item("5", weight=2, timeout=60, module="renderer")
def test_sphere_misses(student):
    """rays that miss the sphere are not in the mask"""
    o, d = _sphere_rays(1)
    _, mask = _trace(student, SPHERE, o, d)
    _, hit = box.sphere_hits(o, d)
    box.need(not np.any(mask[~hit]), "rays that miss the surface are in the mask",
             f"{int(np.sum(mask[~hit]))} of {int((~hit).sum())} missing rays have mask True",
             "a ray hits only where the SDF at its point is (nearly) zero")


@pytest.mark.item("5", weight=1, timeout=60, module="renderer")
def test_far_bound(student):
    """a surface beyond `far` is not a hit"""
    o, d = _sphere_rays(2, n_hit=8, n_miss=0)
    o, d = o[:8], d[:8]
    _, mask = _trace(student, SPHERE, o, d, far=1.5)
    box.need(not np.any(mask), "rays whose surface lies beyond far are in the mask",
             f"{int(mask.sum())} of 8 rays", "a hit must also be nearer than `far` along the ray")


@pytest.mark.item("5", weight=1, timeout=60, module="renderer")
def test_direction_length(student):
    """directions that are not unit length still give the same hits"""
    o, d = _sphere_rays(3)
    scale = np.where(np.arange(len(d)) % 2 == 0, 2.5, 0.4)[:, None]
    points, mask = _trace(student, SPHERE, o, d * scale)
    t, hit = box.sphere_hits(o, d)
    box.need(bool(np.all(mask == hit)), "the mask changes when the directions are scaled")
    expect_close(points[hit], o[hit] + t[hit, None] * d[hit], "the hit points with scaled directions", atol=2e-3,
                 hint="the SDF is a distance: step along the unit direction (normalise the directions)")


@pytest.mark.item("5", weight=3, timeout=90, module="renderer")
def test_torus(student):
    """on the given torus, hit points lie on the surface and clear hits and misses are told apart"""
    rng = np.random.default_rng(5)
    n = 24
    o = rng.normal(size=(n, 3))
    o *= 3.0 / np.linalg.norm(o, axis=1, keepdims=True)
    aim = rng.uniform(-1.3, 1.3, (n, 3)) * [1, 0.3, 1]
    d = (aim - o) / np.linalg.norm(aim - o, axis=1, keepdims=True)
    points, mask = _trace(student, TORUS, o, d, iters=256)
    sdf = lambda p: box.torus_sdf(p, 1.0, 0.3)  # noqa: E731
    t_first, lowest = box.first_crossing(sdf, o, d, far=6.0, steps=6000)
    clear_hit, clear_miss = lowest < -0.05, lowest > 0.05
    box.need(bool(np.all(mask[clear_hit])), "rays that clearly hit the torus are not in the mask",
             f"{int(np.sum(~mask[clear_hit]))} of {int(clear_hit.sum())}")
    box.need(not np.any(mask[clear_miss]), "rays that clearly miss the torus are in the mask",
             f"{int(np.sum(mask[clear_miss]))} of {int(clear_miss.sum())}")
    on = mask & np.isfinite(points).all(1)
    err = np.abs(sdf(points[on])) if on.any() else np.zeros(1)
    box.need(bool(err.max() < 1.5e-3), "hit points are not on the torus' surface", f"the largest |SDF| is {err.max():.3g}")
    sel = clear_hit & mask
    expect_close(points[sel], o[sel] + t_first[sel, None] * d[sel], "the torus hit points", atol=1e-2,
                 hint="sphere tracing stops at the FIRST intersection along the ray")


# -- Q6 eikonal loss and neural distance -----------------------------------------------------------------
def _eikonal_cases():
    rng = np.random.default_rng(6)
    p = rng.normal(size=(50, 3))
    unit = p / np.linalg.norm(p, axis=1, keepdims=True)  # the gradient of |x| - 1
    mixed = rng.normal(size=(40, 3)) * rng.uniform(0.2, 3.0, (40, 1))
    return [("sphere", unit, 0.0), ("norm-2", 2.0 * unit, 1.0), ("3-4-0", np.tile([3.0, 4.0, 0.0], (7, 1)), 16.0),
            ("mixed", mixed, float(np.mean((np.linalg.norm(mixed, axis=1) - 1.0) ** 2)))]


@pytest.mark.item("6", weight=2, timeout=30, module="losses")
@pytest.mark.parametrize("case", _eikonal_cases(), ids=["true-sdf", "norm-2", "constant", "mixed"])
def test_eikonal(student, case):
    """the eikonal loss is the mean of (||grad||_2 - 1)^2 over points"""
    _, grads, want = case
    got = as_array(student.call("losses", "eikonal_loss", box.f32(grads)), "eikonal_loss(gradients)")
    box.need(got.size == 1, "eikonal_loss should return one number", f"got shape {got.shape}")
    expect_close(got.reshape(()), want, "eikonal_loss(gradients)", atol=1e-4, rtol=1e-4,
                 hint="the 2-norm of each point's gradient (over its 3 coordinates), minus 1, squared, averaged over points")


NS_CFG = dict(n_harmonic_functions_xyz=4, n_layers_distance=3, n_hidden_neurons_distance=64, append_distance=[],
              n_layers_color=2, n_hidden_neurons_color=64, append_color=[])


def _neural_surface(student, seed=0):
    return student.call("implicit", "NeuralSurface", box.config(student, via="implicit", **NS_CFG), seed=seed,
                        ret="handle")


@pytest.mark.item("6", weight=3, timeout=120, module="implicit")
def test_neural_sdf_fits_a_sphere(student):
    """the neural distance fits the signed distance of a sphere, negative inside"""
    model = _neural_surface(student)
    rng = np.random.default_rng(8)
    pts = rng.uniform(-1.0, 1.0, (512, 3)).astype(np.float32)
    target = (np.linalg.norm(pts, axis=1, keepdims=True) - 0.6).astype(np.float32)
    d0 = as_array(student.call(model, "get_distance", box.f32(pts[:8])), "get_distance(points)")
    expect_shape(d0, (8, 1), "get_distance(points)", "one distance per point: (N, 1)")
    params = student.call(model, "parameters", ret="handle")
    opt = student.call("implicit", "torch.optim.Adam", params, lr=3e-3, ret="handle")
    for _ in range(150):
        dist = student.call(model, "get_distance", box.f32(pts), ret="handle")
        diff = student.call(dist, "sub", box.f32(target), ret="handle")
        loss = student.call(student.call(diff, "abs", ret="handle"), "mean", ret="handle")
        student.call(opt, "zero_grad", ret="none")
        student.call(loss, "backward", ret="none")
        student.call(opt, "step", ret="none")
    got = as_array(student.call(model, "get_distance", box.f32(pts)), "get_distance(points)")
    err = float(np.mean(np.abs(got - target)))
    inside = target[:, 0] < -0.2
    box.need(err < 0.05 and bool(np.all(got[inside, 0] < 0)), "the neural distance cannot fit a sphere's SDF",
             f"mean |error| {err:.3g} after 150 Adam steps; {int(np.sum(got[inside, 0] >= 0))} points deep inside are not negative",
             "the distance head is a plain Linear layer: a signed distance is negative inside (no ReLU on the output)")


# -- Q7 VolSDF and the colour head ----------------------------------------------------------------------
def _density(student, d, alpha, beta):
    return as_array(student.call("renderer", "sdf_to_density", box.f32(d), alpha, beta), "sdf_to_density(d, alpha, beta)")


def _volsdf(d, alpha, beta):
    return alpha * np.where(d > 0, 0.5 * np.exp(-np.abs(d) / beta), 1 - 0.5 * np.exp(-np.abs(d) / beta))


@pytest.mark.item("7", weight=1, timeout=30, module="renderer")
def test_volsdf_on_surface(student):
    """on the surface (d = 0) the density is alpha / 2"""
    got = _density(student, np.zeros(3), 10.0, 0.1)
    expect_close(got.reshape(-1), np.full(3, 5.0), "sdf_to_density(0, alpha=10, beta)", atol=1e-4)


@pytest.mark.item("7", weight=2, timeout=30, module="renderer")
def test_volsdf_limits(student):
    """far inside the density tends to alpha, far outside to 0"""
    got = _density(student, np.array([-3.0, 3.0]), 7.0, 0.05).reshape(-1)
    expect_close(got, [7.0, 0.0], "sdf_to_density(-far / +far)", atol=1e-3,
                 hint="the density is alpha * Psi_beta(-d): high inside the surface (d < 0), low outside")


@pytest.mark.item("7", weight=3, timeout=30, module="renderer")
@pytest.mark.parametrize("alpha,beta", [(10.0, 0.05), (2.5, 0.4)], ids=["sharp", "soft"])
def test_volsdf_values(student, alpha, beta):
    """the density matches alpha * Psi_beta(-d) at +-beta and across a range of distances"""
    d = np.concatenate([[-beta, beta], np.linspace(-4 * beta, 4 * beta, 17)])
    got = _density(student, d, alpha, beta).reshape(-1)
    expect_close(got[:2], [alpha * (1 - 0.5 * np.exp(-1)), alpha * 0.5 * np.exp(-1)], "sdf_to_density(-beta / +beta)",
                 atol=1e-4, rtol=1e-4, hint="Psi_beta is the CDF of a zero-mean Laplace distribution of scale beta")
    expect_close(got[2:], _volsdf(d[2:], alpha, beta), "sdf_to_density over a range of distances", atol=1e-4, rtol=1e-4)
    box.need(bool(np.all(np.diff(got[2:]) <= 1e-6)), "the density does not decrease with the signed distance")


@pytest.mark.item("7", weight=2, timeout=60, module="implicit")
def test_colour_head(student):
    """the neural surface's colours are (N, 3) in [0, 1], with the distance from get_distance_color"""
    model = _neural_surface(student, seed=1)
    pts = np.random.default_rng(9).uniform(-1, 1, (64, 3))
    col = as_array(student.call(model, "get_color", box.f32(pts)), "get_color(points)")
    expect_shape(col, (64, 3), "get_color(points)", "one RGB colour per point")
    box.need(col.min() >= 0 and col.max() <= 1, "colours leave [0, 1]", f"range [{col.min():.3g}, {col.max():.3g}]",
             "squash the colour output, e.g. with a sigmoid")
    out = student.call(model, "get_distance_color", box.f32(pts))
    box.need(isinstance(out, (tuple, list)) and len(out) == 2, "get_distance_color should return (distance, colour)")
    dist = as_array(out[0], "the distance of get_distance_color")
    expect_close(dist.reshape(-1), as_array(student.call(model, "get_distance", box.f32(pts)), "get_distance").reshape(-1),
                 "get_distance_color's distance against get_distance", atol=1e-5)


# -- Q8.3 the NeuS density --------------------------------------------------------------------------------
def _neus(student, d, s):
    names = student.names("renderer")
    if "neus_sdf_to_density" not in names:
        other = [n for n in names if "neus" in n.lower() or "logistic" in n.lower()]
        if other:
            raise NeedsReview("the NeuS density is not neus_sdf_to_density(signed_distance, s)",
                              "renderer.py defines " + ", ".join(other[:5]))
        raise CheckFailed("Q8.3 was not attempted: renderer.py has no neus_sdf_to_density(signed_distance, s)")
    return as_array(student.call("renderer", "neus_sdf_to_density", box.f32(d), s), "neus_sdf_to_density(d, s)").reshape(-1)


@pytest.mark.item("8.3", weight=1, timeout=30, module="renderer")
@pytest.mark.parametrize("s", [5.0, 40.0], ids=["s=5", "s=40"])
def test_neus_peak(student, s):
    """the logistic density peaks at the surface at s / 4"""
    got = _neus(student, np.array([0.0, 0.05, -0.05, 0.5]), s)
    expect_close(got[0], s / 4, "neus_sdf_to_density(0, s)", atol=1e-3, rtol=1e-4,
                 hint="phi_s(x) = s e^{-sx} / (1 + e^{-sx})^2, the derivative of the sigmoid of s x")
    box.need(bool(got[0] >= got[1:].max()), "the density is not largest on the surface")


@pytest.mark.item("8.3", weight=1, timeout=30, module="renderer")
def test_neus_symmetric(student):
    """the logistic density is symmetric in the signed distance"""
    x = np.linspace(0.01, 1.0, 25)
    got = _neus(student, np.concatenate([x, -x]), 8.0)
    expect_close(got[:25], got[25:], "phi_s(d) against phi_s(-d)", atol=1e-4, rtol=1e-4)


@pytest.mark.item("8.3", weight=2, timeout=30, module="renderer")
@pytest.mark.parametrize("s", [5.0, 40.0], ids=["s=5", "s=40"])
def test_neus_integral(student, s):
    """the logistic density integrates to 1 over the signed distance"""
    x = np.linspace(-6.0, 6.0, 24001)
    got = _neus(student, x, s)
    integral = float(np.sum((got[1:] + got[:-1]) / 2 * np.diff(x)))
    assert integral == pytest.approx(1.0, abs=2e-3)
