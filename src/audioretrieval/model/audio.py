"""The audio-encoder interface: what every audio encoder family provides, and the one way to build one.

A family is one module of `audioretrieval.model.encoders` that defines a subclass of AudioEncoder with
its name in `family` (model.audio.family) and its network's input rate in `sample_rate`; its settings
are its entry in config/schema.yaml (`$defs/audio_encoder`). docs/extending.md says how to add one.

Every family sees the same thing: waveforms at the stored rate (STORED_RATE, data.sample_rate) cut
into windows of model.audio.window_s every hop_s seconds, resampled to its own rate when that differs,
and returns token embeddings per window. This module pools the tokens of a segment (the ones that hold
real signal, not padding) and projects their mean into the shared space, for every family alike.
"""

from __future__ import annotations

import os
import pickle
from typing import ClassVar

import torch
from torch import nn
from torchaudio.functional import resample

from audioretrieval.files import file_digest
from audioretrieval.plugins import subclasses_in

STORED_RATE = 32000  # the rate of the decoded audio (data.sample_rate, a schema constant) and of every model's input
DEFAULT_FAMILY = "passt"  # model.audio.family when absent (checkpoints and configurations written before families)


class WeightsUnavailable(RuntimeError):
    pass


def token_mask(fraction: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """[B, tokens] bool: the tokens of a segment that hold some real signal: those starting, at
    `starts` (each token's start as a fraction of the segment), before its padding, which begins at
    `fraction` of it.

    The first token always counts, so a clip is never left without one.
    """
    mask = starts.to(fraction).unsqueeze(0) < fraction.unsqueeze(1)
    mask[:, 0] = True
    return mask


def published_weights(what: str, url: str | None, md5: str | None, path: str | None) -> dict:
    """A family's published weights: from `path` (model.audio.weights) if given, else downloaded from
    `url` into torch.hub's cache (its MD5 checked when the family records one), read with
    torch.load(weights_only=True)."""
    if path:
        if not os.path.isfile(path):
            raise WeightsUnavailable(f"model.audio.weights: no such file {path!r}")
        source = path
    elif url is None:
        raise WeightsUnavailable(f"{what} has no download address: set model.audio.weights to the file's path")
    else:
        source = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
        try:
            if not os.path.isfile(source):
                os.makedirs(os.path.dirname(source), exist_ok=True)
                torch.hub.download_url_to_file(url, source, progress=False)
        except Exception as exc:
            raise WeightsUnavailable(
                f"cannot fetch the {what} ({type(exc).__name__}: {exc}). Download {url} on a machine with "
                f"internet access and set model.audio.weights to the file's path."
            ) from exc
    if md5 and (found := file_digest(source, "md5")) != md5:
        raise WeightsUnavailable(f"{source}: MD5 {found}, expected {md5} for the {what}; delete it and fetch it again")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # a global outside torch's tensors and plain containers
        raise WeightsUnavailable(
            f"{source}: not readable as the {what} with torch.load(weights_only=True), which loads tensors and "
            f"plain containers only ({str(exc).splitlines()[0]})"
        ) from exc


class AudioEncoder(nn.Module):
    """Waveforms [B, samples] at STORED_RATE -> embeddings [B, out_dim].

    The waveform is cut into windows of `window_s` seconds every `hop_s` seconds. A family computes,
    per window, the part of its front end that depends on the waveform alone (`fixed_features`:
    cacheable, see SpectrogramCache) and from it token embeddings [windows, tokens, width] (`tokens`:
    the rest of the front end, random in training, and the network). The tokens that hold only
    padding are left out of the mean, which `projection` maps into the shared space.

    A family sets `family`, `sample_rate` (its network's input rate) and `width` (its tokens'
    size), builds its network in __init__ after calling this one and ends with
    `self.projection = nn.Linear(self.width, out_dim)`.
    """

    family: ClassVar[str]
    sample_rate: ClassVar[int]

    def __init__(self, cfg: dict, segment_s: float):
        super().__init__()
        self.window = int(round(cfg["window_s"] * STORED_RATE))
        self.hop = int(round(cfg["hop_s"] * STORED_RATE))
        self.segment = int(round(segment_s * STORED_RATE))
        if self.segment < self.window:
            raise ValueError(f"train.segment_s ({segment_s}) is shorter than model.audio.window_s ({cfg['window_s']})")
        self.windows = 1 + (self.segment - self.window) // self.hop
        self.window_at_rate = int(round(cfg["window_s"] * self.sample_rate))  # a window's samples at the family's rate

    # What a family implements.
    def fixed_features(self, windows: torch.Tensor) -> torch.Tensor:
        """[N, window samples at the family's rate] (fp32) -> the deterministic part of the front end [N, ...]."""
        raise NotImplementedError

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """fixed_features' output [N, ...] -> token embeddings [N, tokens, width]."""
        raise NotImplementedError

    def encoder_parameters(self):
        """The parameters of the network (the audio_encoder learning-rate group): all but the projection's."""
        return (p for name, p in self.named_parameters() if not name.startswith("projection."))

    def compile_network(self) -> None:
        """torch.compile the network's forward pass in place (parameter names unchanged)."""
        raise NotImplementedError

    # What every family shares.
    def spectrograms(self, waveform: torch.Tensor) -> torch.Tensor:
        """fixed_features of a segment's windows [B, windows, ...]: the part of the front end that depends
        on the waveform alone, so it can be computed once and reused (SpectrogramCache)."""
        windows = waveform.unfold(1, self.window, self.hop)[:, : self.windows]  # [B, W, window]
        with torch.autocast(waveform.device.type, enabled=False):
            flat = windows.reshape(-1, self.window).float()
            if self.sample_rate != STORED_RATE:
                flat = resample(flat, STORED_RATE, self.sample_rate)
            return self.fixed_features(flat).unflatten(0, windows.shape[:2])

    def token_starts(self, per_window: int, device: torch.device | None = None) -> torch.Tensor:
        """[windows * per_window]: where each token starts, as a fraction of the segment (a window's
        tokens spread evenly over it). Where the windows tile the segment (hop = window, as in every
        shipped configuration) token k of n starts at k / n, as the reference code counts windows."""
        # exact rationals (samples x per_window) reduced before the one division, so that a start that
        # is k / n is rounded as k / n is, bit for bit
        window = torch.arange(self.windows, device=device).unsqueeze(1) * (self.hop * per_window)
        within = torch.arange(per_window, device=device).unsqueeze(0) * self.window
        numerator = (window + within).flatten()
        denominator = torch.full_like(numerator, per_window * self.segment)
        common = torch.gcd(numerator, denominator)
        return (numerator // common).float() / (denominator // common).float()

    def forward(
        self, waveform: torch.Tensor, fraction: torch.Tensor, spectrograms: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeddings [B, out_dim] of segments; `spectrograms`, when given, are their windows' fixed
        features, as spectrograms(waveform) would compute them."""
        batch = waveform.shape[0]
        features = self.spectrograms(waveform) if spectrograms is None else spectrograms
        tokens = self.tokens(features.flatten(0, 1))
        per_window = tokens.shape[1]
        tokens = tokens.reshape(batch, -1, tokens.shape[-1])  # a segment's windows' tokens in time order
        mask = token_mask(fraction, self.token_starts(per_window, fraction.device)).unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1)
        return self.projection(pooled)


def families() -> dict[str, type[AudioEncoder]]:
    """Every family of audioretrieval.model.encoders, by name (each module defining an AudioEncoder subclass)."""
    from audioretrieval.model import encoders

    return subclasses_in(encoders, AudioEncoder, "family")


def family_of(cfg: dict) -> str:
    return cfg.get("family", DEFAULT_FAMILY)


def audio_encoder(cfg: dict, segment_s: float, out_dim: int) -> AudioEncoder:
    """The encoder model.audio describes."""
    known = families()
    name = family_of(cfg)
    if name not in known:
        raise ValueError(f"model.audio.family: unknown family {name!r}; known: {', '.join(sorted(known))}")
    return known[name](cfg, segment_s, out_dim)


class SpectrogramCache:
    """Fixed front-end features (AudioEncoder.spectrograms) of the clips whose segment is always the
    same, computed once per clip and reused at every later step and epoch: the clips no longer than
    the segment, which are zero-padded and never cropped at random. The rest of the front end (for
    PaSST and EfficientAT the mel bands, drawn at random in training) runs at every step, so the
    model's output is exactly what it would be without the cache. Meant for small CPU runs (the demo:
    about 1.2 MB per clip with PaSST), where the STFT is half the cost of a training step; held in CPU
    memory."""

    def __init__(self, clip_lengths, segment_samples: int):
        self.cacheable = torch.as_tensor(clip_lengths) <= segment_samples
        self.stored: dict[int, torch.Tensor] = {}

    def __call__(self, encoder: AudioEncoder, waveform: torch.Tensor, clip_ids: torch.Tensor) -> torch.Tensor:
        """The batch's fixed features [B, windows, ...], on the waveform's device."""
        ids = clip_ids.tolist()
        fresh = [i for i, c in enumerate(ids) if c not in self.stored]
        computed = {}
        if fresh:
            with torch.no_grad():
                computed = dict(zip(fresh, encoder.spectrograms(waveform[fresh]).cpu()))
        for i, power in computed.items():
            if self.cacheable[ids[i]]:
                self.stored[ids[i]] = power
        return torch.stack([computed[i] if i in computed else self.stored[c] for i, c in enumerate(ids)]).to(
            waveform.device
        )
