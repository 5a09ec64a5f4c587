"""The adapter that lets the explanation engine drive any video ``torch.nn.Module``.

:class:`VideoModel` owns, in one place, everything that depends on the model: the input
layout (``NCTHW`` or ``NTCHW``), the clip length and input size, normalisation, how to
read its output (tensor, tuple, or a Hugging Face ``ModelOutput`` with ``.logits``), and
which layer Grad-CAM reads.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..errors import ModelError, ModelOutputError

#: Kinetics-400 normalisation used by torchvision's video models.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
LAYOUTS = ("NCTHW", "NTCHW")


def _first_tensor(output):
    import torch

    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, dict) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModelOutputError(
        f"model returned {type(output).__name__}; expected a tensor, a tuple starting with "
        "one, or an object with .logits"
    )


class VideoModel:
    """A video model ready to be explained.

    Build it with :func:`wrap`. Calling it on a preprocessed batch returns ``(N, K)``
    outputs; :meth:`preprocess` turns uint8 RGB frames into that batch.

    Attributes:
        module: the wrapped ``torch.nn.Module`` (put in eval mode).
        layout: ``"NCTHW"`` or ``"NTCHW"``.
        clip_length: frames per clip the model takes.
        input_size: ``(height, width)`` of its frames.
        output: ``"regression"`` or ``"logits"``.
        name: a label for cubes and figures.
        uses_clip_geometry: whether :meth:`prepare_clip` must see each clip's landmarks
            before the model runs on it (multi-stream models place their crops there).
        output_range: ``(low, high)`` the explained output is meant to stay in (the scale
            it was trained on), or ``None`` when undeclared; settable. Clips predicted
            outside it are flagged in the cube (``prediction_out_of_range``).
    """

    uses_clip_geometry: bool = False
    #: where the weights came from (``""`` when the caller built the module), a file, or a
    #: zoo architecture's "random, seed N (untrained)"; recorded in the cube
    weights_source: str = ""

    def __init__(self, module, layout: str = "NCTHW", clip_length: int = 16,
                 input_size: tuple[int, int] = (112, 112), mean: Sequence[float] = KINETICS_MEAN,
                 std: Sequence[float] = KINETICS_STD, output: str = "regression",
                 gradcam_layer: str | bool | None = None, name: str | None = None,
                 output_range: Sequence[float] | None = None):
        import torch

        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
        if layout not in LAYOUTS:
            raise ModelError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if output not in ("regression", "logits"):
            raise ModelError(f"output must be 'regression' or 'logits', got {output!r}")
        self.module = module.eval()
        self.layout = layout
        self.clip_length = int(clip_length)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.output = output
        self.name = name or type(module).__name__
        self._gradcam_layer_name = gradcam_layer
        self._candidates: list[str] | None = None
        self.output_range = output_range

    # --- input ----------------------------------------------------------------------
    @property
    def channel_dim(self) -> int:
        """Axis of colour channels in the model's input."""
        return 1 if self.layout == "NCTHW" else 2

    @property
    def time_dim(self) -> int:
        return 2 if self.layout == "NCTHW" else 1

    def preprocess(self, frames: np.ndarray, device="cpu"):
        """uint8 RGB ``(T, H, W, 3)`` or ``(N, T, H, W, 3)`` → normalised float tensor in
        the model's layout, ``(N, C, T, H, W)`` or ``(N, T, C, H, W)``."""
        import torch

        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ModelError(f"frames must be uint8 RGB (0-255), got {frames.dtype}; frames in [0, 1] become "
                             "uint8 with (frames * 255).round().astype(np.uint8)")
        if frames.ndim == 4:
            frames = frames[None]
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ModelError(f"frames must be (T, H, W, 3) or (N, T, H, W, 3) RGB, got {frames.shape}")
        if tuple(frames.shape[2:4]) != self.input_size:
            raise ModelError(f"frames are {frames.shape[2]}x{frames.shape[3]} but the model takes "
                             f"{self.input_size[0]}x{self.input_size[1]}; crop them with FaceCrop(size=...)")
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(device=device, dtype=torch.float32) / 255.0
        x = (x - self.mean.to(device)) / self.std.to(device)  # (N, T, H, W, C)
        if self.layout == "NCTHW":
            return x.permute(0, 4, 1, 2, 3).contiguous()
        return x.permute(0, 1, 4, 2, 3).contiguous()

    def to_pixels(self, attribution) -> np.ndarray:
        """Model-layout attribution ``(N, C, T, H, W)``/``(N, T, C, H, W)`` → ``(N, T, H, W)``
        float64, summed over colour channels."""
        return attribution.detach().sum(dim=self.channel_dim).double().cpu().numpy()

    def prepare_clip(self, landmarks: np.ndarray) -> None:
        """Take the clip's ``(T, 68, 2)`` landmarks in model-input pixels before it runs.

        A plain model needs nothing (``uses_clip_geometry`` is False); models whose input
        depends on where the face is (multi-stream crops) override it.
        """

    # --- output ---------------------------------------------------------------------
    def __call__(self, x):
        """``(N, K)`` outputs of a preprocessed batch (the forward Captum sees)."""
        if getattr(x, "ndim", 0) != 5 or x.shape[self.channel_dim] != 3:
            order = "(N, 3, T, H, W)" if self.layout == "NCTHW" else "(N, T, 3, H, W)"
            raise ModelError(f"{self.name} takes a preprocessed batch {order} ({self.layout}), got "
                             f"{tuple(getattr(x, 'shape', ()))}; make it with model.preprocess(frames)")
        return self._forward(x)

    def _forward(self, x):
        out = _first_tensor(self.module(x))
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ModelOutputError(
                f"{self.name} returned shape {tuple(out.shape)} for a batch of {x.shape[0]}; "
                "expected (N, K) scores (or (N,) for one regression output)"
            )
        return out

    forward = __call__

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(low, high)`` the explained output is meant to stay in, or ``None``.

        Example:
            >>> from expresso_xai.testing import tiny_model
            >>> model = tiny_model(input_size=(64, 64))
            >>> model.output_range is None
            True
            >>> model.output_range = (0, 63)
            >>> model.output_range
            (0.0, 63.0)
        """
        return self._output_range

    @output_range.setter
    def output_range(self, value: Sequence[float] | None) -> None:
        self._output_range = _checked_range(value)

    # --- Grad-CAM layer -------------------------------------------------------------
    def named_layers(self) -> dict:
        return dict(self.module.named_modules())

    def candidate_layers(self, device="cpu") -> list[str]:
        """Layers with a spatio-temporal output (5-D, more than one position), in the
        order they finish during a forward pass: what Grad-CAM can read."""
        import torch

        if self._candidates is None:
            finished: list[str] = []
            hooks = []
            for name, layer in self.module.named_modules():
                if not name:
                    continue

                def hook(_layer, _inputs, output, name=name):
                    if isinstance(output, torch.Tensor) and output.ndim == 5 and int(np.prod(output.shape[2:])) > 1:
                        finished.append(name)

                try:
                    hooks.append(layer.register_forward_hook(hook))
                except RuntimeError:  # TorchScript modules take no hooks: nothing to read
                    continue
            try:
                with torch.no_grad():
                    self(self.probe_input(device))
            finally:
                for handle in hooks:
                    handle.remove()
            self._candidates = list(dict.fromkeys(finished))
        return list(self._candidates)

    def probe_input(self, device="cpu", batch: int = 1):
        import torch

        shape = [batch, 3, self.clip_length, *self.input_size]
        if self.layout == "NTCHW":
            shape = [batch, self.clip_length, 3, *self.input_size]
        return torch.zeros(shape, device=device)

    @property
    def gradcam_layer_name(self) -> str:
        """Name of the layer Grad-CAM reads, the one given to :func:`wrap`, else the last
        layer with a spatio-temporal output (the last 3-D convolutional block)."""
        if self._gradcam_layer_name is False:
            raise ModelError(
                f"{self.name} has no convolutional block whose map Grad-CAM can read (a transformer); "
                "use saliency, integrated_gradients or occlusion, or pass gradcam_layer= to wrap() "
                f"naming one of {self.candidate_layers()}"
            )
        if self._gradcam_layer_name is None:
            candidates = self.candidate_layers()
            if not candidates:
                raise ModelError(
                    f"{self.name} has no layer with a spatio-temporal (5-D) output, so Grad-CAM has "
                    "nothing to read; pass gradcam_layer= to wrap(), or use saliency, "
                    "integrated_gradients or occlusion"
                )
            self._gradcam_layer_name = candidates[-1]
        return self._gradcam_layer_name

    @property
    def gradcam_layer(self):
        layers = self.named_layers()
        name = self.gradcam_layer_name
        if name not in layers:
            candidates = self.candidate_layers()
            raise ModelError(f"{self.name} has no layer {name!r}; layers Grad-CAM can read: {candidates}")
        return layers[name]

    # --- checking the input geometry ---------------------------------------------------
    def _runs(self, layout: str, size: tuple[int, int], device="cpu") -> str | None:
        """None if a forward of one zero clip in ``layout`` and ``size`` works, else the error."""
        import torch

        shape = [1, 3, self.clip_length, *size] if layout == "NCTHW" else [1, self.clip_length, 3, *size]
        try:
            with torch.no_grad():
                self._forward(torch.zeros(shape, device=device))  # the module itself, in either layout
        except ModelError:
            raise  # our own diagnosis (e.g. an output of the wrong shape) says it best
        except (RuntimeError, ValueError, IndexError) as exc:
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None

    def check(self, device="cpu") -> "VideoModel":
        """Run one zero clip through the model; on failure, say why in the model's terms:
        the other layout works (suggest it), or a larger input works (report the minimum
        size), or pass the module's own error on. Returns ``self``.

        Example:
            >>> import torch, expresso_xai as ex
            >>> net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, (1, 9, 9)), torch.nn.AdaptiveAvgPool3d(1),
            ...                           torch.nn.Flatten(), torch.nn.Linear(4, 1))
            >>> try:
            ...     ex.models.wrap(net, layout="NTCHW", input_size=(32, 32))  # wrap() checks
            ... except ex.errors.ModelError as error:
            ...     print(str(error).split("); ")[-1])
            it accepts NCTHW: wrap(..., layout='NCTHW')
        """
        problem = self._runs(self.layout, self.input_size, device)
        if problem is None:
            return self
        other = "NTCHW" if self.layout == "NCTHW" else "NCTHW"
        if self._runs(other, self.input_size, device) is None:
            raise ModelError(f"{self.name} rejects {self.layout} input ({problem}); it accepts {other}: "
                             f"wrap(..., layout={other!r})")
        for side in (32, 48, 64, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512):
            if side > max(self.input_size) and self._runs(self.layout, (side, side), device) is None:
                raise ModelError(f"{self.name} cannot take {self.input_size[0]}x{self.input_size[1]} frames "
                                 f"({problem}); the smallest square input that works (of 32 to 512 px) is {side}x{side}: "
                                 f"wrap(..., input_size=({side}, {side}))")
        raise ModelError(f"{self.name} fails on a {self.layout} clip of {self.clip_length} frames at "
                         f"{self.input_size[0]}x{self.input_size[1]}: {problem}")

    # --- provenance -----------------------------------------------------------------
    def weights_hash(self) -> str:
        """SHA-256 of the parameters and buffers (names, shapes and values).

        Remembered until a tensor changes: torch counts every in-place change of a tensor
        (an optimiser step, ``load_state_dict``) in its version, and a replaced tensor is
        another object, so the key below changes with the weights (hashing r3d_18's
        33 M parameters takes about 90 ms, and ``explain`` asks twice).
        """
        tensors = sorted(self.module.state_dict(keep_vars=True).items())
        key = tuple((name, id(t), t.data_ptr(), t._version, str(t.dtype), tuple(t.shape)) for name, t in tensors)
        cached = getattr(self, "_weights_hash", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = hashlib.sha256()
        for name, tensor in tensors:
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        self._weights_hash = (key, digest.hexdigest())
        return self._weights_hash[1]

    def describe(self) -> str:
        """What the adapter inferred, as text."""
        try:
            layer = self.gradcam_layer_name
        except ModelError as exc:
            layer = f"none ({exc})"
        return (
            f"{self.name}: layout {self.layout}, clips of {self.clip_length} frames at "
            f"{self.input_size[0]}x{self.input_size[1]}, output {self.output}{self._range_text()}, "
            f"Grad-CAM layer {layer}"
        )

    def _range_text(self) -> str:
        if self.output_range is None:
            return ""
        return " in [{:g}, {:g}]".format(*self.output_range)

    def __repr__(self) -> str:
        """One line, computed without running the model (a layer not yet chosen is "auto").

        Example:
            >>> from expresso_xai.models.demo import build_demo_net, wrap_demo_net
            >>> wrap_demo_net(build_demo_net())
            <VideoModel demo: NCTHW, 16 frames at 64x64, regression in [0, 63], Grad-CAM block2>
        """
        layer = self._gradcam_layer_name
        layer = "none" if layer is False else "auto" if layer is None else layer
        weights = f", weights {self.weights_source}" if self.weights_source else ""
        return (f"<{type(self).__name__} {self.name}: {self.layout}, {self.clip_length} frames at "
                f"{self.input_size[0]}x{self.input_size[1]}, {self.output}{self._range_text()}, "
                f"Grad-CAM {layer}{weights}>")


def _checked_range(value) -> tuple[float, float] | None:
    """``value`` as ``(low, high)`` floats with ``low < high`` (either may be infinite for a
    one-sided range), or ``None``; anything else is a :class:`ModelError`."""
    if value is None:
        return None
    try:
        low, high = (float(bound) for bound in value)
    except (TypeError, ValueError):
        raise ModelError(f"output_range must be two numbers (low, high), e.g. (0, 63), got {value!r}") from None
    if not low < high:  # also refuses NaN
        raise ModelError(f"output_range must have low < high, got ({low:g}, {high:g})")
    return low, high


def wrap(module, layout: str = "NCTHW", clip_length: int = 16, input_size: tuple[int, int] = (112, 112),
         mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
         output: str = "regression", gradcam_layer: str | bool | None = None, name: str | None = None,
         check: bool = True, output_range: Sequence[float] | None = None) -> VideoModel:
    """Wrap any video ``nn.Module`` for :func:`expresso_xai.explain`.

    Args:
        module: takes a float tensor in ``layout`` and returns ``(N, K)`` scores (a tensor,
            a tuple starting with one, or an object with ``.logits``).
        layout: ``"NCTHW"`` (torchvision video models) or ``"NTCHW"`` (many transformers).
        clip_length, input_size: frames per clip and their ``(height, width)``.
        mean, std: per-channel normalisation of RGB in ``[0, 1]`` (default Kinetics).
        output: ``"regression"`` (one score) or ``"logits"`` (classes).
        gradcam_layer: name of the layer Grad-CAM reads (default: the last layer with a
            spatio-temporal output; ``False``: none, Grad-CAM refuses clearly).
        check: run one zero clip through the model now, so a wrong layout or a too small
            input fails here with advice (see :meth:`VideoModel.check`).
        output_range: ``(low, high)`` the explained output is meant to stay in (e.g. the
            0-63 scale a regression was trained on; ``float("inf")`` for an open side),
            or ``None``. Cubes flag clips predicted outside it (``prediction_out_of_range``);
            when the video's prediction (the mean over its clips) is outside it,
            ``explain`` warns (:class:`~expresso_xai.errors.OutputRangeWarning`) and the
            CLI and the Explorer show a caution.

    Example:
        >>> import torch, expresso_xai as ex
        >>> net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))
        >>> model = ex.models.wrap(net, clip_length=16, input_size=(64, 64), name="tiny")
        >>> model.describe()
        'tiny: layout NCTHW, clips of 16 frames at 64x64, output regression, Grad-CAM layer 1'
    """
    model = VideoModel(module, layout, clip_length, input_size, mean, std, output, gradcam_layer, name,
                       output_range)
    return model.check() if check else model
