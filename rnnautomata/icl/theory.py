"""Closed-form and ODE theory of linear attention trained on in-context linear regression.

Everything here is derived for the invariant subspace of ``models/linear_attention.py``, where the
model is ŷ = x_q^T Γ β with β = Σ_{n≤N} y_n x_n. Data: x ~ N(0, Λ), w ~ N(0, I), label noise σ.
Loss: mean squared error *without* a factor ½ (as the authors' code, ``nn.MSELoss``); time is
t = lr × epochs (gradient flow on that loss).

Population moments (S = Σ_n x_n x_n^T is Wishart(N, Λ), so E[S²] = N(N+1)Λ² + N tr(Λ) Λ):

    E[y_q ŷ] = N tr(Γ Λ²),      E[β β^T] = G := N(N+1)Λ² + N(tr Λ + σ²) Λ
    L(Γ) = tr Λ + σ² − 2N tr(Γ Λ²) + tr(Γ G Γ^T Λ)                                   (T1)
    ∇_Γ L = 2(Λ Γ G − N Λ²),     Γ* = N Λ G^{-1},  γ*_d = 1 / ((N+1)λ_d + tr Λ + σ²)   (T2)

In Λ's eigenbasis a diagonal Γ = diag(κ_d) decouples: L = tr Λ + σ² + Σ_d (s_d κ_d² − 2 r_d κ_d) with
r_d = N λ_d² and s_d = λ_d g_d (g_d the eigenvalues of G). Learning mode d lowers the loss by
Δ_d = r_d² / s_d = N λ_d² / ((N+1)λ_d + tr Λ + σ²). The separate model's saddles learn the modes one at a
time in order of decreasing λ_d (Zhang et al. 2025, Sec. 5), so its k-th plateau sits at

    L_k = tr Λ + σ² − Σ_{d≤k} Δ_d                                                       (T3)

and the model there computes ŷ = x_q^T Γ*_k β, Γ*_k = Σ_{d≤k} γ*_d e_d e_d^T: regression on the top-k
principal components (compare ``algorithms.pcr_predict``).

Merged model, white Λ = λI, balanced heads aligned with Γ* (Zhang et al. 2025, Sec. 4, the class of
data and initialisation with an analytical solution). With Γ = μ R̂ (|R̂|_F = 1, R̂ ∝ I), c the context
scale, ρ = N λ² √D and s = λ g:

    dμ/dt = 4 c ρ μ (1 − μ/μ*),   μ* = ρ / s                                          (T4)
    μ(t) = μ* / (1 + (μ*/μ0 − 1) e^{−4cρt}),  drop (half-way) at t½ = ln(μ*/μ0 − 1) / (4cρ)

For other Λ or a random small init the early phase is linear: the component p_h = (⟨W_h, ĝ⟩ + v_h)/2
along ĝ = Λ²/|Λ²|_F grows as e^{2cN|Λ²|_F t}, so μ0 = c Σ_h p_h(0)² in (T4) with ρ = N|Λ²|_F gives
the drop time (``merged_drop_time``).

Separate model, a rank-one head aligned with e_d and balanced (v = a = b = u, κ_d = c u³): the scalar
ODE of Zhang et al. (2025, Sec. 5)

    du/dt = 2 c u² (r_d − s_d c u³)                                                    (T5)

whose blow-up from u0 takes ≈ 1 / (2 c r_d u0): larger eigenvalues are learned first.

Simplified model (Mainali & Teixeira 2025, Sec. 3), Γ = c A B, A and B aligned with Λ and balanced
(a_d = b_d): each mode is an independent logistic

    κ_d(t) = γ*_d / (1 + (γ*_d/κ_d(0) − 1) e^{−4 c r_d t}),   timescale τ_d = 1 / (4 c N λ_d²)   (T6)

and A^T A − B B^T is conserved by gradient flow (under GD it drifts by O(lr²) per step).

``population_descent`` integrates the exact population dynamics of any of the models from their
actual initial weights — gradient descent on (T1) with the training learning rate, or the gradient
flow with scipy — which is the infinite-data theory the simulations are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

__all__ = [
    "Moments",
    "moments",
    "icl_loss",
    "icl_loss_torch",
    "optimal_gamma",
    "mode_gains",
    "plateau_losses",
    "merged_white_solution",
    "merged_drop_time",
    "separate_scalar_ode",
    "simplified_mode_solution",
    "conserved_quantity",
    "PopulationTrajectory",
    "population_descent",
]


@dataclass(frozen=True)
class Moments:
    """Population quantities of in-context regression (module docstring, T1–T2)."""

    eigvals: np.ndarray      # λ_d, descending (D,)
    eigvecs: np.ndarray      # columns e_d (D, D)
    n_context: int           # N
    noise_var: float         # σ²
    trace: float             # tr Λ

    @property
    def g(self) -> np.ndarray:        # eigenvalues of G = E[β β^T]
        lam, n = self.eigvals, self.n_context
        return n * (n + 1) * lam**2 + n * (self.trace + self.noise_var) * lam

    @property
    def r(self) -> np.ndarray:        # r_d = N λ_d²
        return self.n_context * self.eigvals**2

    @property
    def s(self) -> np.ndarray:        # s_d = λ_d g_d
        return self.eigvals * self.g

    @property
    def gamma_star(self) -> np.ndarray:   # γ*_d (T2)
        return 1.0 / ((self.n_context + 1) * self.eigvals + self.trace + self.noise_var)


def moments(covariance: np.ndarray, n_context: int, noise_std: float = 0.0) -> Moments:
    """Eigen-decompose Λ (eigenvalues descending) and bundle the population moments."""
    lam, vecs = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
    order = np.argsort(lam)[::-1]
    return Moments(lam[order], vecs[:, order], int(n_context), float(noise_std) ** 2, float(lam.sum()))


def _matrices(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    u = m.eigvecs
    return u @ np.diag(m.eigvals) @ u.T, u @ np.diag(m.g) @ u.T


def icl_loss(gamma: np.ndarray, covariance: np.ndarray, n_context: int, noise_std: float = 0.0) -> float:
    """Population loss (T1) of the predictor ŷ = x_q^T Γ β."""
    m = moments(covariance, n_context, noise_std)
    lam_m, g_m = _matrices(m)
    gamma = np.asarray(gamma, dtype=np.float64)
    return float(m.trace + m.noise_var - 2 * n_context * np.trace(gamma @ lam_m @ lam_m)
                 + np.trace(gamma @ g_m @ gamma.T @ lam_m))


def icl_loss_torch(gamma: torch.Tensor, m: Moments) -> torch.Tensor:
    """(T1) differentiable in Γ (for ``population_descent``)."""
    lam_m, g_m = (torch.as_tensor(a, dtype=gamma.dtype, device=gamma.device) for a in _matrices(m))
    return (m.trace + m.noise_var - 2 * m.n_context * torch.trace(gamma @ lam_m @ lam_m)
            + torch.trace(gamma @ g_m @ gamma.T @ lam_m))


def optimal_gamma(covariance: np.ndarray, n_context: int, noise_std: float = 0.0, k: int | None = None) -> np.ndarray:
    """Γ*_k = Σ_{d≤k} γ*_d e_d e_d^T (T2); ``k=None`` gives the global optimum Γ* (k = D)."""
    m = moments(covariance, n_context, noise_std)
    k = len(m.eigvals) if k is None else k
    e = m.eigvecs[:, :k]
    return e @ np.diag(m.gamma_star[:k]) @ e.T


def mode_gains(covariance: np.ndarray, n_context: int, noise_std: float = 0.0) -> np.ndarray:
    """Δ_d = r_d² / s_d, the loss removed by learning mode d (descending λ_d)."""
    m = moments(covariance, n_context, noise_std)
    return m.r**2 / m.s


def plateau_losses(covariance: np.ndarray, n_context: int, noise_std: float = 0.0) -> np.ndarray:
    """L_0..L_D of (T3): L_0 = tr Λ + σ² (nothing learned), L_D = the global minimum."""
    m = moments(covariance, n_context, noise_std)
    return m.trace + m.noise_var - np.concatenate([[0.0], np.cumsum(mode_gains(covariance, n_context, noise_std))])


def merged_white_solution(
    t: np.ndarray, lam: float, x_dim: int, n_context: int, mu0: float,
    noise_std: float = 0.0, context_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(μ(t), loss(t)) of (T4) for Λ = λ I_D from the aligned, balanced start μ(0) = μ0 > 0."""
    t = np.asarray(t, dtype=np.float64)
    m = moments(lam * np.eye(x_dim), n_context, noise_std)
    rho = n_context * lam**2 * np.sqrt(x_dim)
    s = lam * m.g[0]
    mu_star = rho / s
    mu = mu_star / (1.0 + (mu_star / mu0 - 1.0) * np.exp(-4 * context_scale * rho * t))
    loss = m.trace + m.noise_var - 2 * rho * mu + s * mu**2
    return mu, loss


def merged_drop_time(
    covariance: np.ndarray, n_context: int, value_y: np.ndarray, key_query_xx: np.ndarray,
    noise_std: float = 0.0, context_scale: float = 1.0,
) -> float:
    """Gradient-flow time of the merged model's loss drop (half-way point of T4, general Λ).

    ``value_y`` (H,) are the heads' y-values and ``key_query_xx`` (H, D, D) their x-x key-query blocks at
    initialisation. Exact for white Λ with aligned balanced heads; a linear-phase estimate otherwise.
    """
    m = moments(covariance, n_context, noise_std)
    lam_m, _ = _matrices(m)
    target = n_context * lam_m @ lam_m                      # −∇L at Γ = 0, halved
    rho = float(np.linalg.norm(target))
    g_hat = target / rho
    proj = np.einsum("hij,ij->h", key_query_xx, g_hat)
    mu0 = context_scale * float(np.sum(((proj + value_y) / 2) ** 2))
    # the logistic's fixed point along ĝ: minimise (T1) over Γ = μ ĝ
    s = float(np.trace(g_hat @ (_matrices(m)[1]) @ g_hat.T @ lam_m))
    mu_star = rho / s
    return float(np.log(max(mu_star / mu0 - 1.0, 1.0)) / (4 * context_scale * rho))


def separate_scalar_ode(
    t: np.ndarray, covariance: np.ndarray, n_context: int, u0: np.ndarray,
    noise_std: float = 0.0, context_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate (T5) for every mode: returns κ (len(t), D) and the loss (len(t),).

    ``u0`` (D,) is each mode's balanced initial factor (v = a = b = u0_d); modes are independent.
    """
    m = moments(covariance, n_context, noise_std)
    t = np.asarray(t, dtype=np.float64)
    c = context_scale

    def rhs(_, u):
        return 2 * c * u**2 * (m.r - m.s * c * u**3)

    sol = solve_ivp(rhs, (0.0, float(t[-1])), np.asarray(u0, dtype=np.float64), t_eval=t,
                    method="LSODA", rtol=1e-8, atol=1e-12)
    kappa = c * sol.y.T**3                                   # (T, D)
    loss = m.trace + m.noise_var + (m.s * kappa**2 - 2 * m.r * kappa).sum(axis=1)
    return kappa, loss


def simplified_mode_solution(
    t: np.ndarray, covariance: np.ndarray, n_context: int, kappa0: np.ndarray,
    noise_std: float = 0.0, context_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed form (T6): κ (len(t), D) and the loss (len(t),) from κ(0) = kappa0 (D,), all > 0."""
    m = moments(covariance, n_context, noise_std)
    t = np.asarray(t, dtype=np.float64)[:, None]
    k_star = m.gamma_star
    kappa = k_star / (1.0 + (k_star / np.asarray(kappa0) - 1.0) * np.exp(-4 * context_scale * m.r * t))
    loss = m.trace + m.noise_var + (m.s * kappa**2 - 2 * m.r * kappa).sum(axis=1)
    return kappa, loss


def conserved_quantity(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """A^T A − B B^T, constant under gradient flow of any loss of the product A B."""
    a, b = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in (a, b))
    return a.T @ a - b @ b.T


@dataclass(frozen=True)
class PopulationTrajectory:
    """The infinite-data trajectory of a model (``population_descent``)."""

    times: np.ndarray        # (T,) gradient-flow time = lr × step
    steps: np.ndarray        # (T,) step numbers
    loss: np.ndarray         # (T,) population loss (T1)
    gamma: np.ndarray        # (T, D, D) effective matrix Γ


def population_descent(
    model: torch.nn.Module, covariance: np.ndarray, n_context: int, lr: float, steps: int,
    record_every: int = 10, noise_std: float = 0.0, flow: bool = False,
) -> PopulationTrajectory:
    """Train a copy of ``model`` on the population loss (T1) of its ``effective_matrix()``.

    ``flow=False``: gradient descent with the same ``lr`` for ``steps`` steps (matches the simulation
    step for step). ``flow=True``: the gradient flow, integrated with scipy's LSODA up to t = lr·steps.
    The model itself is not modified. Works for LinearAttention and SimplifiedLinearTransformer.
    """
    m = moments(covariance, n_context, noise_std)
    params = [p.detach().to("cpu", torch.float64).clone().requires_grad_(True) for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    effective = _Effective(model)

    def gamma_of(ps: list[torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(effective, {f"inner.{n}": p for n, p in zip(names, ps)}, ())

    def loss_of(ps: list[torch.Tensor]) -> torch.Tensor:
        return icl_loss_torch(gamma_of(ps), m)

    rec_steps = np.arange(0, steps + 1, record_every)
    losses, gammas = [], []
    if not flow:
        for step in range(steps + 1):
            loss = loss_of(params)
            if step % record_every == 0:
                losses.append(loss.item())
                gammas.append(gamma_of(params).detach().numpy().copy())
            if step == steps:
                break
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= lr * g
    else:
        def rhs(_, flat):
            ps = [torch.tensor(chunk.reshape(s), dtype=torch.float64, requires_grad=True)
                  for chunk, s in zip(np.split(flat, np.cumsum(sizes)[:-1]), shapes)]
            grads = torch.autograd.grad(loss_of(ps), ps)
            return -np.concatenate([g.numpy().ravel() for g in grads])

        flat0 = np.concatenate([p.detach().numpy().ravel() for p in params])
        sol = solve_ivp(rhs, (0.0, lr * steps), flat0, t_eval=lr * rec_steps, method="LSODA", rtol=1e-7, atol=1e-14)
        for flat in sol.y.T:
            ps = [torch.tensor(chunk.reshape(s), dtype=torch.float64)
                  for chunk, s in zip(np.split(flat, np.cumsum(sizes)[:-1]), shapes)]
            losses.append(loss_of(ps).item())
            gammas.append(gamma_of(ps).numpy())
    return PopulationTrajectory(lr * rec_steps, rec_steps, np.array(losses), np.stack(gammas))


class _Effective(torch.nn.Module):
    """Wraps a model so that ``functional_call`` can evaluate its ``effective_matrix`` at given weights."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self) -> torch.Tensor:
        return self.inner.effective_matrix()
