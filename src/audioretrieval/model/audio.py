"""The audio branch: mel front end and PaSST over fixed windows, masked mean, linear projection."""

from __future__ import annotations

import contextlib
import io
import os

import hear21passt.models.passt as passt_module
import torch
from hear21passt.models.passt import PaSST, checkpoint_filter_fn, default_cfgs
from hear21passt.models.preprocess import AugmentMelSTFT
from torch import nn
from torchaudio.compliance.kaldi import get_mel_banks

from audioretrieval.device import to_device
from audioretrieval.model.attention import use_fused_attention

passt_module.first_RUN = False  # PaSST prints tensor shapes on its first forward otherwise

SAMPLE_RATE = 32000
HOP = 320
N_MELS = 128
# The reference code's (and the DCASE 2025 baseline's) AugmentMelSTFT arguments: band edges fmin = 0 and
# fmax = 16000 - 2000 / 2 = 15000 Hz at evaluation; in training fmin + U{0..9} and fmax + 1000 - U{0..1999}.
MEL_ARGUMENTS = dict(
    n_mels=N_MELS,
    sr=SAMPLE_RATE,
    win_length=800,
    hopsize=HOP,
    n_fft=1024,
    freqm=0,
    timem=0,
    htk=False,
    fmin=0.0,
    fmax=None,
    norm=1,
    fmin_aug_range=10,
    fmax_aug_range=2000,
)


class WeightsUnavailable(RuntimeError):
    pass


def window_mask(fraction: torch.Tensor, windows: int) -> torch.Tensor:
    """[B, windows] bool: windows holding some real signal (window k starts before the padding).

    The first window always counts, so a clip is never left without one.
    """
    starts = torch.arange(windows, device=fraction.device, dtype=fraction.dtype) / windows
    mask = starts.unsqueeze(0) < fraction.unsqueeze(1)
    mask[:, 0] = True
    return mask


def fetch_passt_weights(arch: str, weights: str | None) -> dict:
    """AudioSet weights of a hear21passt architecture: from `weights` (a local file) if given,
    else downloaded (and cached) the way hear21passt does."""
    if weights:
        if not os.path.isfile(weights):
            raise WeightsUnavailable(f"model.audio.weights: no such file {weights!r}")
        return torch.load(weights, map_location="cpu", weights_only=True)
    url = default_cfgs[arch]["url"]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(
            f"cannot fetch the PaSST AudioSet weights ({type(exc).__name__}: {exc}). Download {url} on a "
            f"machine with internet access and set model.audio.weights to the file's path."
        ) from exc


class MelFrontEnd(AugmentMelSTFT):
    """hear21passt's AugmentMelSTFT built with the reference code's arguments (MEL_ARGUMENTS), with the same
    output computed about twice as fast on a CPU.

    The pre-emphasis filter is applied by slicing instead of a 1-channel conv1d and the STFT is
    taken in complex form; frequency/time masking is off (freqm = timem = 0), as in the paper. In
    training the band edges are drawn as AugmentMelSTFT draws them (same calls, same order).
    """

    def __init__(self):
        with contextlib.redirect_stdout(io.StringIO()):  # "Warning: FMAX is None setting to 15000"
            super().__init__(**MEL_ARGUMENTS)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """[N, samples] -> the pre-emphasised signal's power spectrogram [N, n_fft // 2 + 1, frames]
        (deterministic: the random part of the front end is the mel bands drawn from it)."""
        coefficient = -self.preemphasis_coefficient[0, 0, 0]
        x = x[:, 1:] - coefficient * x[:, :-1]
        spectrum = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hopsize,
            win_length=self.win_length,
            center=True,
            normalized=False,
            window=self.window,
            return_complex=True,
        )
        return spectrum.real.square() + spectrum.imag.square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mel_of_power(self.power(x))

    def mel_of_power(self, power: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel spectrogram [N, n_mels, frames] of power spectrograms."""
        if self.training:  # the same random band edges as AugmentMelSTFT draws (on the host's generator)
            fmin = self.fmin + torch.randint(self.fmin_aug_range, (1,)).item()
            fmax = self.fmax + self.fmax_aug_range // 2 - torch.randint(self.fmax_aug_range, (1,)).item()
            mel_basis = to_device(self.mel_bands(fmin, fmax), power.device)
        else:
            mel_basis = self.evaluation_bands(power.device)
        return ((torch.matmul(mel_basis, power) + 0.00001).log() + 4.5) / 5.0

    def mel_bands(self, fmin: float, fmax: float) -> torch.Tensor:
        """The filter bank [n_mels, n_fft // 2 + 1] between band edges, built on the host."""
        mel_basis, _ = get_mel_banks(
            self.n_mels, self.n_fft, self.sr, fmin, fmax, vtln_low=100.0, vtln_high=-500.0, vtln_warp_factor=1.0
        )
        return nn.functional.pad(mel_basis, (0, 1))

    def evaluation_bands(self, device: torch.device) -> torch.Tensor:
        """The fixed band edges' filter bank, built once per device (not a buffer: checkpoints stay
        hear21passt's)."""
        if getattr(self, "_evaluation_bands", None) is None or self._evaluation_bands.device != device:
            self._evaluation_bands = self.mel_bands(self.fmin, self.fmax).to(device)
        return self._evaluation_bands


class PasstAudioEncoder(nn.Module):
    """Waveforms [B, samples] at 32 kHz -> embeddings [B, out_dim].

    The waveform is cut into windows of `window_s` seconds every `hop_s` seconds; each window's
    mel spectrogram goes through PaSST (structured patchout in training only) and gives the mean of
    its two token outputs; windows that are only padding are left out of the mean.
    """

    def __init__(self, cfg: dict, segment_s: float, out_dim: int):
        super().__init__()
        self.window = int(round(cfg["window_s"] * SAMPLE_RATE))
        self.hop = int(round(cfg["hop_s"] * SAMPLE_RATE))
        self.segment = int(round(segment_s * SAMPLE_RATE))
        if self.segment < self.window:
            raise ValueError(f"train.segment_s ({segment_s}) is shorter than model.audio.window_s ({cfg['window_s']})")
        self.windows = 1 + (self.segment - self.window) // self.hop
        self.mel = MelFrontEnd()
        frames = (self.window - 1) // HOP + 1  # the pre-emphasis filter drops one sample
        self.passt = PaSST(
            img_size=(N_MELS, frames),
            patch_size=16,
            stride=16,
            in_chans=1,
            num_classes=527,
            embed_dim=cfg["embed_dim"],
            depth=cfg["depth"],
            num_heads=cfg["num_heads"],
            distilled=True,
            s_patchout_t=cfg["patchout_t"],
            s_patchout_f=cfg["patchout_f"],
        )
        if cfg.get("pretrained"):
            state = checkpoint_filter_fn(fetch_passt_weights(cfg["arch"], cfg.get("weights")), self.passt)
            self.passt.load_state_dict(state)
        self.passt.head = nn.Identity()  # the AudioSet classifiers are not used
        self.passt.head_dist = None
        if cfg.get("fused_attention"):
            use_fused_attention(self.passt)
        self.projection = nn.Linear(cfg["embed_dim"], out_dim)

    def encoder_parameters(self):
        return self.passt.parameters()

    def spectrograms(self, waveform: torch.Tensor) -> torch.Tensor:
        """The power spectrograms of a segment's windows [B, windows, bins, frames]: the part of the
        front end that depends on the waveform alone, so it can be computed once and reused
        (SpectrogramCache)."""
        windows = waveform.unfold(1, self.window, self.hop)[:, : self.windows]  # [B, W, window]
        with torch.autocast(waveform.device.type, enabled=False):
            return self.mel.power(windows.reshape(-1, self.window).float()).unflatten(0, windows.shape[:2])

    def forward(
        self, waveform: torch.Tensor, fraction: torch.Tensor, spectrograms: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeddings [B, out_dim] of segments; `spectrograms`, when given, are their windows' power
        spectrograms, as spectrograms(waveform) would compute them."""
        batch = waveform.shape[0]
        power = self.spectrograms(waveform) if spectrograms is None else spectrograms
        with torch.autocast(waveform.device.type, enabled=False):
            mel = self.mel.mel_of_power(power.flatten(0, 1).float())
        with torch.device(mel.device):  # patchout's torch.randperm on the model's device: no copy from the host
            cls_token, dist_token = self.passt.forward_features(mel.unsqueeze(1))
        per_window = ((cls_token + dist_token) / 2).reshape(batch, self.windows, -1)
        mask = window_mask(fraction, self.windows).unsqueeze(-1).to(per_window.dtype)
        pooled = (per_window * mask).sum(1) / mask.sum(1)
        return self.projection(pooled)


class SpectrogramCache:
    """Power spectrograms of the clips whose segment is always the same, computed once per clip and
    reused at every later step and epoch: the clips no longer than the segment, which are
    zero-padded and never cropped at random. The rest of the front end (the mel bands, drawn at
    random in training) runs at every step, so the model's output is exactly what it would be
    without the cache. Meant for small CPU runs (the demo: about 1.2 MB per clip), where the STFT is
    half the cost of a training step; held in CPU memory."""

    def __init__(self, clip_lengths, segment_samples: int):
        self.cacheable = torch.as_tensor(clip_lengths) <= segment_samples
        self.stored: dict[int, torch.Tensor] = {}

    def __call__(self, encoder: PasstAudioEncoder, waveform: torch.Tensor, clip_ids: torch.Tensor) -> torch.Tensor:
        """The batch's power spectrograms [B, windows, bins, frames], on the waveform's device."""
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
