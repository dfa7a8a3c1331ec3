"""float32 Miller indices from one float64 product per orientation (engine.render.split_indices).

Against h = a . (d - incident) / lambda in float64 (C's double): the whole
indices agree exactly and the fractional offsets to float32 precision, for
a crystal of large cells at 0.3 A (h near 300) and a 2% wavelength band,
where a float32 h alone is off by 1e-5; the gradient reaches the cell
through the rest.
"""
import torch

from nanobragg.engine.render import _Implicit, split_indices


def _setup(seed=0, k=2, s=5, c=3, p=4000):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(k, 3, p, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    incident = -torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0]]).double()
                                              + 1e-3 * torch.randn(s, 3, generator=g).double(), dim=1)
    lam = 0.3e-10 * (1 + 0.02 * torch.rand(s, generator=g, dtype=torch.float64))
    cells = 90e-10 * (torch.eye(3, dtype=torch.float64) + 0.1 * torch.randn(c, 3, 3, generator=g).double())
    return d, incident, 1.0 / lam, cells


def _exact(d, incident, inv_lam, cells):
    """(K, S, C, P) h, k, l in float64, C's way: q = (d - incident)/lambda, h = a . q."""
    q = (d[:, None] - incident[None, :, :, None]) * inv_lam[None, :, None, None]  # (K, S, 3, P)
    return tuple(torch.einsum("cj,ksjp->kscp", cells[:, i], q) for i in range(3))


def test_split_indices_match_float64_indices():
    d, incident, inv_lam, cells = _setup()
    exact = _exact(d, incident, inv_lam, cells)
    assert max(float(h.abs().max()) for h in exact) > 250  # indices where float32 h loses 1e-5
    hkl, h0, frac = split_indices(_Implicit(d, incident, inv_lam), cells, torch.float32, need_h=True)
    for h, n, f, e in zip(hkl, h0, frac, exact):
        e0 = torch.ceil(e - 0.5)
        ef = e - e0
        clear = (ef.abs() < 0.5 - 1e-5)  # away from the ties, where a rounding may choose the other side
        assert clear.float().mean() > 0.99
        assert torch.equal(n.double()[clear], e0[clear])
        assert float((f.double() - ef)[clear].abs().max()) < 1e-6  # float32 h: 2e-5
        assert float((h.double() - e)[clear].abs().max()) < 1e-4  # h0 + frac in float32
        assert n.dtype == f.dtype == torch.float32


def test_split_indices_carry_the_gradient_of_the_cell():
    d, incident, inv_lam, cells = _setup(p=50)
    cells = cells.requires_grad_()
    _, _, frac = split_indices(_Implicit(d, incident, inv_lam), cells, torch.float32, need_h=False)
    (g32,) = torch.autograd.grad(sum(f.double().sum() for f in frac), cells)
    (g64,) = torch.autograd.grad(sum(e.sum() for e in _exact(d, incident, inv_lam, cells)), cells)
    assert torch.allclose(g32, g64, rtol=1e-5, atol=1e-3 * float(g64.abs().max()))
