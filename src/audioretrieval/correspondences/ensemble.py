"""Ensemble correspondence targets without an N x N matrix.

The ensemble's estimate for audio i and caption j is the mean cosine over its M members,
S[i, j] = 1/M sum_m <a_i^m, c_j^m>. Concatenating each member's normalised embeddings and scaling
by 1/sqrt(M) turns that into one dot product: S[i, j] = <A_i, C_j> with A_i = [a_i^1 .. a_i^M] / sqrt(M)
(likewise C_j). The targets file stores A and C; any batch's block S[clips, captions] is exact.

Members may differ in embedding size (an audio and a text vector of one member must agree); every
member's vectors must be L2-normalised, as embeddings files are.

Targets file (HDF5): /audio float32 [clips, D_1 + ... + D_M], /text float32 [captions, D_1 + ... + D_M],
the identities of the members' embeddings files, and attrs members (their paths).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from audioretrieval.files import written_atomically
from audioretrieval.data.embeddings import first_difference, identities_of, read_identities, write_identities

_ROWS_PER_CHUNK = 8192
_NORM_TOLERANCE = 1e-3


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
    """Each member's embedding size; MemberMismatch where its audio and text sizes differ."""
    dims = []
    for member, f in zip(members, handles):
        audio, text = f["audio"].shape[1], f["text"].shape[1]
        if audio != text:
            raise MemberMismatch(f"ensemble member {member}: audio vectors of {audio} and text vectors of {text} "
                                 f"dimensions; expected one embedding size")
        dims.append(audio)
    return dims


def _check_normalised(block: np.ndarray, member: str, key: str, first_row: int) -> None:
    norms = np.linalg.norm(block, axis=1)
    worst = int(np.argmax(np.abs(norms - 1)))
    if not abs(norms[worst] - 1) <= _NORM_TOLERANCE:
        raise MemberMismatch(f"ensemble member {member}: {key} row {first_row + worst} has L2 norm {norms[worst]:.6g}; "
                             f"expected normalised embeddings (norm 1), as export_embeddings writes them")


def build_targets(members: list[str], out_h5: str | os.PathLike) -> None:
    """Write the scaled concatenation of the members' embeddings, streaming rows in chunks."""
    identities = check_members_agree(members)
    scale = np.float32(1 / math.sqrt(len(members)))
    handles = [h5py.File(m, "r") for m in members]
    try:
        width = sum(_member_dims(handles, members))
        with written_atomically(out_h5) as tmp, h5py.File(tmp, "w") as out:
            for key in ("audio", "text"):
                rows = handles[0][key].shape[0]
                # contiguous (not chunked), so that readers can memory-map it
                target = out.create_dataset(key, shape=(rows, width), dtype=np.float32)
                for start in range(0, rows, _ROWS_PER_CHUNK):
                    stop = min(rows, start + _ROWS_PER_CHUNK)
                    blocks = [h[key][start:stop] for h in handles]
                    for member, block in zip(members, blocks):
                        _check_normalised(block, member, key, start)
                    target[start:stop] = np.concatenate(blocks, axis=1) * scale
            write_identities(out, identities)
            out.attrs["members"] = [str(m) for m in members]
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
    """Blocks S[clips, captions] of the ensemble's mean cosine, read from a targets file.

    `in_memory` loads both matrices (ClothoV2: about 280 MB for 3 members of 1024 dimensions); otherwise they are
    memory-mapped, so a block reads only its own rows (WavCaps-sized targets never fill memory).
    """

    def __init__(self, path: str | os.PathLike, in_memory: bool = True):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.members = list(f.attrs["members"])
            if in_memory:
                self.audio, self.text = f["audio"][:], f["text"][:]
            else:
                self.audio, self.text = _memory_map(self.path, f["audio"]), _memory_map(self.path, f["text"])

    def block(self, clip_rows, caption_rows) -> torch.Tensor:
        """[len(clip_rows), len(caption_rows)] mean cosine of the members."""
        audio = np.asarray(self.audio[np.asarray(clip_rows)])
        text = np.asarray(self.text[np.asarray(caption_rows)])
        return torch.from_numpy(audio @ text.T)
