"""Integrated gradients (Sundararajan et al. 2017) with an adaptive number of steps.

Completeness says the attributions add up to ``f(x) - f(baseline)``; how far they miss
(Captum's convergence delta, relative to ``|f(x) - f(baseline)|``) measures the error of
the path integral. The step count starts small and grows until that error is within
``tolerance`` (default 1%) or ``max_steps`` is reached; the steps used, the error reached
and whether it converged are stored per clip in the cube — a clip that never reaches
the tolerance is flagged, not hidden.

Rules:
  * ``"gausslegendre"`` (default, as Captum): each refinement doubles the steps. Its nodes
    are not nested, so a refinement cannot reuse earlier gradients.
  * ``"trapezoid"``: nested trapezoid rule; doubling the steps reuses every gradient
    already computed, so reaching ``n`` steps costs ``n + 1`` gradient passes in all.

Steps go through the model ``batch_size`` at a time, or more on CUDA: as many as the
memory budget the engine measured allows (``ClipContext.step_budget``, see ``batched``).

With ``autocast="bf16"`` the steps run in bfloat16 autocast, and completeness is checked
against ``f(x) - f(baseline)`` of the float32 model (two more forwards), so the stored
error includes the rounding of the reduced precision. Doubling the steps does not reduce
that rounding, so under autocast the refinement also stops when a doubling no longer
halves the error (the rounding floor is reached) instead of running on to ``max_steps``;
a clip above ``tolerance`` is flagged (``converged`` False) and a
:class:`~expresso_xai.errors.PrecisionWarning` says so. It is
a warning and not a refusal because the error is measured and stored with the clip; a
study that needs the tolerance runs without autocast.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import PrecisionWarning
from .base import ClipContext, Method, MethodResult, precision, register


def _relative_error(total_attribution: float, f_x: float, f_b: float) -> float:
    difference = f_x - f_b
    return abs(total_attribution - difference) / max(abs(difference), 1e-12)


@register
class IntegratedGradients(Method):
    name = "integrated_gradients"
    defaults = {"baseline": "blur", "tolerance": 0.01, "start_steps": 8, "max_steps": 128,
                "rule": "gausslegendre", "n_steps": None}
    choices = {"rule": ("gausslegendre", "trapezoid")}
    counts = ("start_steps", "max_steps", "n_steps")
    amounts = ("tolerance",)

    def attribute(self, ctx: ClipContext) -> MethodResult:
        baseline = ctx.baseline(self.options["baseline"])
        if self.options["rule"] == "trapezoid":
            return self._trapezoid(ctx, baseline)
        return self._gauss_legendre(ctx, baseline)

    def _schedule(self):
        if self.options["n_steps"] is not None:  # fixed step count, no adaptation
            return [int(self.options["n_steps"])]
        steps, out = int(self.options["start_steps"]), []
        while steps < self.options["max_steps"]:
            out.append(steps)
            steps *= 2
        return out + [int(self.options["max_steps"])]

    def _result(self, attribution, error, steps, passes, ctx):
        converged = bool(error <= self.options["tolerance"])
        stats = {"steps": int(steps), "completeness_error": float(error), "converged": converged}
        if ctx.autocast:
            stats["autocast"] = ctx.autocast
            if not converged:  # one message per run (Python shows a repeated warning once): errors are in the cube
                warnings.warn(f"integrated_gradients under autocast={ctx.autocast!r}: the completeness error is above "
                              f"the tolerance {self.options['tolerance']:.2%} (reduced-precision rounding); those "
                              "clips are flagged in integrated_gradients_converged with their error in "
                              "integrated_gradients_completeness_error. Use autocast=False where the tolerance matters",
                              PrecisionWarning, stacklevel=2)
        return MethodResult(pixels=ctx.model.to_pixels(attribution)[0], stats=stats, passes=passes)

    def _endpoints(self, ctx, baseline) -> tuple[float, float, int]:
        """``(f(x), f(baseline), passes)`` in float32: completeness is checked against the
        model the cube describes, also when the steps ran in reduced precision."""
        if ctx.autocast:  # the clip's own forward ran in autocast: not the reference
            return float(ctx.output(ctx.x)[0]), float(ctx.output(baseline)[0]), 2
        passes = 1 if ctx.output_is_known() else 2  # f(b), and f(x) unless the clip's forward gave it
        return float(ctx.output()[0]), float(ctx.output(baseline)[0]), passes

    @staticmethod
    def _stalled(ctx, previous: float | None, error: float) -> bool:
        """Under autocast: whether a doubling of the steps failed to halve the error."""
        return bool(ctx.autocast) and previous is not None and error > previous / 2

    @staticmethod
    def _steps_per_forward(ctx, steps: int) -> int:
        """``batch_size`` steps per forward, or up to the device's memory budget when the
        engine measured one (a GPU filled by 16 steps of a small clip is not full)."""
        return min(steps, max(ctx.batch_size or steps, ctx.step_budget or 0))

    def _gauss_legendre(self, ctx, baseline):
        from captum.attr import IntegratedGradients as CaptumIG

        explainer = CaptumIG(ctx.model)
        f_x, f_b, passes = self._endpoints(ctx, baseline)
        error = None
        for steps in self._schedule():
            with precision(ctx.x.device, ctx.autocast):
                attribution = explainer.attribute(
                    ctx.x, baselines=baseline, target=ctx.target, n_steps=steps, method="gausslegendre",
                    internal_batch_size=self._steps_per_forward(ctx, steps),
                )
            passes += steps
            error, previous = _relative_error(float(attribution.sum()), f_x, f_b), error
            if error <= self.options["tolerance"] or self._stalled(ctx, previous, error):
                break
        return self._result(attribution, error, steps, passes, ctx)

    def _trapezoid(self, ctx, baseline):
        import torch

        difference = ctx.x - baseline
        batch = max(ctx.batch_size or 8, ctx.step_budget or 0)

        def gradients(alphas):
            """Sum of target gradients at the given path points, and their outputs."""
            total = torch.zeros_like(ctx.x)
            outputs = []
            for start in range(0, len(alphas), batch):
                chunk = torch.tensor(alphas[start : start + batch], dtype=ctx.x.dtype, device=ctx.x.device)
                points = (baseline + chunk.view(-1, *([1] * (ctx.x.ndim - 1))) * difference).requires_grad_(True)
                with torch.enable_grad(), precision(ctx.x.device, ctx.autocast):
                    out = ctx.model(points)[:, ctx.target].float()
                    (grad,) = torch.autograd.grad(out.sum(), points)
                total += grad.sum(dim=0, keepdim=True)
                outputs.extend(out.detach().tolist())
            return total, outputs

        ends, (f_b, f_x) = gradients([0.0, 1.0])
        steps, passes = 1, 2
        if ctx.autocast:
            f_x, f_b, extra = self._endpoints(ctx, baseline)
            passes += extra
        interior = torch.zeros_like(ctx.x)
        schedule, error = self._schedule(), None
        for target_steps in schedule:
            while steps < target_steps:  # refine by halving every interval
                new = (np.arange(steps) + 0.5) / steps
                added, _ = gradients(list(new))
                interior += added
                passes += len(new)
                steps *= 2
            attribution = difference * (ends / 2 + interior) / steps
            error, previous = _relative_error(float(attribution.sum()), f_x, f_b), error
            if error <= self.options["tolerance"] or self._stalled(ctx, previous, error):
                break
        return self._result(attribution, error, steps, passes, ctx)
