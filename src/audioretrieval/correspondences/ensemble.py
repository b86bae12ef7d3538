"""Ensemble correspondence targets without an N x N matrix.

The ensemble's estimate for audio i and caption j is the mean of its M members' scores. An
audio-text member (a stage-1 model's embeddings file) scores the cosine <a_i^m, c_j^m>; concatenating
these members' normalised embeddings, each scaled by 1/sqrt(M), turns their part of the mean into one
dot product: <A_i, C_j> with A_i = [a_i^1 .. a_i^K] / sqrt(M) (likewise C_j). A caption member
(correspondences.captions: caption j's cosines with clip i's own captions, aggregated) adds
w_c * score_c(i, j); any batch's block S[clips, captions] is exact. A caption member aggregates as
its caption file says unless the ensemble names another aggregation (`captions:paired`).

Scales: the members' scores are averaged as they are, except a caption member beside audio-text
members, whose scores are first scaled to the audio-text members' spread (the mean standard deviation
of their scores over the training pairs, estimated on a fixed sample of pairs), so that each member
weighs alike in the mean whatever the sentence model's cosine range; w_c = that scale / M. Alone, a
caption member keeps its cosines (w_c = 1). Nothing of the ground truth enters.

Audio-text members may differ in embedding size (an audio and a text vector of one member must agree);
every member's vectors must be L2-normalised, as embeddings and caption files are.

Targets file (HDF5): /audio float32 [clips, D_1 + ... + D_K], /text float32 [captions, D_1 + ... + D_K]
(K audio-text members; width 0 without them), with a caption member also /caption_text [captions, D_c]
(captions.DATASET) and attrs caption_weight, aggregation; the identities of the members' files, and
attrs members (their paths) and member_weights (each one's weight in the sum).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from audioretrieval.correspondences.captions import DATASET as CAPTION_DATASET
from audioretrieval.correspondences.captions import CaptionScores, is_caption_file
from audioretrieval.data.embeddings import first_difference, identities_of, read_identities, write_identities
from audioretrieval.files import HDF5Output

_ROWS_PER_CHUNK = 8192
_NORM_TOLERANCE = 1e-3
_SPREAD_CLIPS, _SPREAD_CAPTIONS = 1000, 4000  # the sample of pairs whose score spread scales a caption member


class MemberMismatch(ValueError):
    pass


def check_members_agree(members: list[str]) -> dict:
    """The members' common identities; MemberMismatch names the first member that differs."""
    if not members:
        raise MemberMismatch("an ensemble needs at least one member")
    reference = read_identities(members[0])
    for member in members[1:]:
        key = first_difference(reference, read_identities(member))
        if key:
            raise MemberMismatch(
                f"ensemble members {members[0]} and {member} do not embed the same {_what(key)} ({key} differs)"
            )
    return reference


def _what(key: str) -> str:
    return "clips" if key == "file_name" else "captions"


def _member_dims(handles: list[h5py.File], members: list[str]) -> list[int]:
    """Each audio-text member's embedding size; MemberMismatch where its audio and text sizes differ."""
    dims = []
    for member, f in zip(members, handles):
        audio, text = f["audio"].shape[1], f["text"].shape[1]
        if audio != text:
            raise MemberMismatch(
                f"ensemble member {member}: audio vectors of {audio} and text vectors of {text} "
                f"dimensions; expected one embedding size"
            )
        dims.append(audio)
    return dims


def _check_normalised(block: np.ndarray, member: str, key: str, first_row: int) -> None:
    norms = np.linalg.norm(block, axis=1)
    worst = int(np.argmax(np.abs(norms - 1)))
    if not abs(norms[worst] - 1) <= _NORM_TOLERANCE:
        raise MemberMismatch(
            f"ensemble member {member}: {key} row {first_row + worst} has L2 norm {norms[worst]:.6g}; "
            f"expected normalised embeddings (norm 1), as export_embeddings writes them"
        )


def _split_members(handles: list[h5py.File], members: list[str]) -> tuple[list[int], int | None]:
    """The positions of the audio-text members and of the caption member (at most one)."""
    captions = [i for i, f in enumerate(handles) if is_caption_file(f)]
    if len(captions) > 1:
        raise MemberMismatch(f"an ensemble takes one caption member, got {[members[i] for i in captions]}")
    audio = [i for i in range(len(handles)) if i not in captions]
    for i in audio:
        if "audio" not in handles[i] or "text" not in handles[i]:
            raise MemberMismatch(f"ensemble member {members[i]}: neither an embeddings file nor a caption file")
    return audio, captions[0] if captions else None


def _sample_rows(rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, min(rows, size), replace=False))


def score_spreads(
    handles: list[h5py.File], audio: list[int], caption: int, aggregation: str | None = None
) -> tuple[float, float]:
    """The standard deviation of the caption member's scores and the mean one of the audio-text
    members' scores, over the same fixed sample of (clip, caption) pairs (at most 1,000 x 4,000)."""
    rng = np.random.default_rng(0)
    clips = _sample_rows(handles[caption]["file_name"].shape[0], _SPREAD_CLIPS, rng)
    captions = _sample_rows(handles[caption][CAPTION_DATASET].shape[0], _SPREAD_CAPTIONS, rng)
    scores = CaptionScores.from_file(handles[caption], aggregation=aggregation).block(clips, captions)
    caption_spread = float(scores.numpy().std())
    if not caption_spread > 0:
        raise MemberMismatch("the caption member scores every sampled pair alike: its scores have no spread to scale")
    audio_spread = np.mean([float((handles[i]["audio"][clips] @ handles[i]["text"][captions].T).std()) for i in audio])
    return float(audio_spread), caption_spread


def build_targets(members: list[str], out_h5: str | os.PathLike, caption_aggregation: str | None = None) -> None:
    """Write the scaled concatenation of the audio-text members' embeddings, streaming rows in chunks,
    and a caption member's embeddings with its weight and its aggregation (the caption file's, or
    `caption_aggregation`)."""
    identities = check_members_agree(members)
    scale = np.float32(1 / math.sqrt(len(members)))
    handles = [h5py.File(m, "r") for m in members]
    try:
        audio, caption = _split_members(handles, members)
        audio_handles, audio_members = [handles[i] for i in audio], [members[i] for i in audio]
        width = sum(_member_dims(audio_handles, audio_members))
        weights = [1 / len(members)] * len(members)
        with HDF5Output(out_h5) as out:
            for key in ("audio", "text"):
                rows = len(identities["file_name"] if key == "audio" else identities["caption"])
                # contiguous (not chunked), so that readers can memory-map it
                target = out.create_dataset(key, shape=(rows, width), dtype=np.float32)
                for start in range(0, rows, _ROWS_PER_CHUNK) if width else ():
                    stop = min(rows, start + _ROWS_PER_CHUNK)
                    blocks = [h[key][start:stop] for h in audio_handles]
                    for member, block in zip(audio_members, blocks):
                        _check_normalised(block, member, key, start)
                    target[start:stop] = np.concatenate(blocks, axis=1) * scale
            if caption is not None:
                embeddings = handles[caption][CAPTION_DATASET][:]
                _check_normalised(embeddings, members[caption], CAPTION_DATASET, 0)
                aggregation = caption_aggregation or str(handles[caption].attrs["aggregation"])
                spreads = score_spreads(handles, audio, caption, aggregation) if audio else (1.0, 1.0)
                weights[caption] = spreads[0] / spreads[1] / len(members)
                out[CAPTION_DATASET] = embeddings
                out.attrs.update(caption_weight=weights[caption], aggregation=aggregation)
            write_identities(out, identities)
            out.attrs["members"] = [str(m) for m in members]
            out.attrs["member_weights"] = weights
    finally:
        for h in handles:
            h.close()


def check_targets_match(targets: str | os.PathLike, file_names: list[str], captions) -> None:
    """The targets must describe exactly the training clips and captions, in the same order."""
    key = first_difference(read_identities(targets), identities_of(file_names, captions))
    if key:
        raise MemberMismatch(
            f"{targets}: the targets were estimated on other {_what(key)} than the training set "
            f"(rebuild them from embeddings of the training split)"
        )


def _memory_map(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    offset = dataset.id.get_offset()
    if offset is None:
        raise ValueError(f"{path}: dataset {dataset.name} is not stored contiguously and cannot be memory-mapped")
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)


class EnsembleTargets:
    """Blocks S[clips, captions] of an ensemble's mean score, read from a targets file (or from one
    member's own file: an embeddings file scores its cosines, a caption file its caption scores).

    `in_memory` loads the audio-text part (ClothoV2: about 280 MB for 3 members of 1024 dimensions);
    otherwise it is memory-mapped, so a block reads only its own rows (WavCaps-sized targets never fill
    memory). A caption part is always in memory (one vector per caption). With a GPU `device`
    everything is kept there and a block is computed there from index tensors on that device: no copy
    to or from the host. Memory-mapped, the audio-text part is a NumPy matrix product.
    """

    def __init__(self, path: str | os.PathLike, in_memory: bool = True, device: str | torch.device = "cpu"):
        self.path, self.device = Path(path), torch.device(device)
        if not in_memory and self.device.type != "cpu":
            raise ValueError(f"{self.path}: memory-mapped targets are read on the CPU, not on {self.device}")
        with h5py.File(self.path, "r") as f:
            self.members = list(f.attrs.get("members", [str(self.path)]))
            self.clips, self.captions = len(f["file_name"]), len(f["caption"])
            self.audio = self.text = None
            if "audio" in f and f["audio"].shape[1]:
                if in_memory:
                    self.audio, self.text = (torch.from_numpy(f[key][:]).to(self.device) for key in ("audio", "text"))
                else:
                    self.audio, self.text = _memory_map(self.path, f["audio"]), _memory_map(self.path, f["text"])
            self.caption_scores = CaptionScores.from_file(f, self.device) if CAPTION_DATASET in f else None
            self.caption_weight = float(f.attrs.get("caption_weight", 1.0))

    def block(self, clip_rows, caption_rows, paired_rows=None) -> torch.Tensor:
        """[len(clip_rows), len(caption_rows)] mean score of the members, on the targets' device;
        paired_rows: the caption each clip row was drawn with (a batch's, for a `paired` caption member)."""
        clip_rows = torch.as_tensor(clip_rows, device=self.device)
        caption_rows = torch.as_tensor(caption_rows, device=self.device)
        scores = torch.zeros(len(clip_rows), len(caption_rows), device=self.device)
        if isinstance(self.audio, torch.Tensor):
            scores = self.audio[clip_rows] @ self.text[caption_rows].T
        elif self.audio is not None:
            clips, captions = clip_rows.numpy(), caption_rows.numpy()
            scores = torch.from_numpy(np.asarray(self.audio[clips]) @ np.asarray(self.text[captions]).T)
        if self.caption_scores is not None:
            scores = scores + self.caption_weight * self.caption_scores.block(clip_rows, caption_rows, paired_rows)
        return scores

    def matrix(self, captions_per_block: int = 4096) -> np.ndarray:
        """The whole [clips, captions] matrix (for the demo's quality figures and the report's examples)."""
        clips = np.arange(self.clips)
        blocks = [
            self.block(clips, np.arange(start, min(self.captions, start + captions_per_block))).cpu().numpy()
            for start in range(0, self.captions, captions_per_block)
        ]
        return np.concatenate(blocks, axis=1)
