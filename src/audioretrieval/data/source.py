"""The dataset-source interface: a captioned dataset given as files, read into one manifest that the
pipeline decodes into the same products as ClothoV2's (audio.h5, captions.parquet per split).

A source is one module of `audioretrieval.data.sources` that defines a subclass of DatasetSource with
its name in `name` (the value of data.source, and the configuration section holding its settings);
its settings are that section's entry in config/schema.yaml. docs/extending.md says how to add one.
ClothoV2 and the demo keep rules of their own (a verified download, a generator).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import pandas as pd

from audioretrieval.data.captions import caption_table_of_clips, nfc
from audioretrieval.data.clotho import SPLITS
from audioretrieval.data.decode import DecodeSummary, Expected, decode_members, files_in_folder
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.files import write_table_atomically
from audioretrieval.plugins import subclasses_in

# one row per caption: the audio file (a path below the source's root), the caption, the clip's split,
# and where the row came from (for errors: "train.csv row 4")
MANIFEST_COLUMNS = ["file", "caption", "split", "origin"]


DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows path's drive: not below the root


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Manifest:
    root: Path  # the folder the files are relative to
    rows: pd.DataFrame  # MANIFEST_COLUMNS
    where: str  # what errors name: the manifest file, or the setting that gave it


def clip_names(files: pd.Series) -> pd.Series:
    """The clip name of each file: its file name, as the decoded audio stores it."""
    return files.map(lambda path: nfc(PurePosixPath(path).name))


class DatasetSource:
    """A dataset source: `settings` are its configuration section (named `where` in errors)."""

    name: ClassVar[str]

    def __init__(self, settings: dict, where: str):
        self.settings, self.where = settings, where

    def inputs(self) -> list[str]:
        """The files whose change reruns the data preparation (the manifest; not the audio it lists)."""
        raise NotImplementedError

    def read(self) -> Manifest:
        """The manifest: every caption with its file and split; raises ManifestError in one sentence."""
        raise NotImplementedError


def sources() -> dict[str, type[DatasetSource]]:
    """Every source of audioretrieval.data.sources, by name (each module defining a DatasetSource subclass)."""
    from audioretrieval.data import sources as package

    return subclasses_in(package, DatasetSource, "name")


def source_of(name: str, settings: dict, where: str | None = None) -> DatasetSource:
    return sources()[name](settings, where or name)


def normalised(path: str) -> str:
    """A manifest path as the pipeline compares it: NFC, forward slashes, no `.` or `x/..` steps."""
    return posixpath.normpath(nfc(path).replace("\\", "/"))


def split_by_rule(files: pd.Series, fractions: dict) -> pd.Series:
    """Each file's split by a hash of its path: `fractions` of the files (validation, evaluation) leave
    development. A file keeps its split when others are added or removed."""

    def split_of(path: str) -> str:
        u = int.from_bytes(hashlib.md5(normalised(path).encode()).digest()[:8], "big") / 2**64
        if u < fractions["evaluation"]:
            return "evaluation"
        return "validation" if u < fractions["evaluation"] + fractions["validation"] else "development"

    return files.map(split_of)


def checked(manifest: Manifest, splits: tuple[str, ...] = SPLITS) -> Manifest:
    """The manifest with its paths normalised, or a ManifestError naming the first offending row:
    an empty file or caption, a path outside the root, an unknown split, a file in two splits, or two
    files that would be one clip (the same file name in two folders). Each of `splits` must hold a clip."""
    rows = manifest.rows.copy()
    for column in ("file", "caption"):
        empty = rows[column].astype(str).str.strip() == ""
        if empty.any():
            first = rows[empty].iloc[0]
            raise ManifestError(
                f"{first['origin']}: empty {column} ({int(empty.sum())} such rows); "
                f"expected an audio file and a caption in every row"
            )
    rows["file"] = rows["file"].map(normalised)
    outside = rows["file"].map(
        lambda path: path.startswith(("/", "../")) or path == ".." or DRIVE.match(path) is not None
    )
    if outside.any():
        first = rows[outside].iloc[0]
        raise ManifestError(
            f"{first['origin']}: file {first['file']!r} is not below {manifest.root}; "
            f"expected a path relative to that folder"
        )
    unknown = ~rows["split"].isin(SPLITS)
    if unknown.any():
        first = rows[unknown].iloc[0]
        raise ManifestError(
            f"{first['origin']}: unknown split {first['split']!r} of {first['file']!r}; "
            f"expected one of {', '.join(SPLITS)}"
        )
    splits_of_file = rows.groupby("file", sort=False)["split"].unique()
    several = splits_of_file[splits_of_file.map(len) > 1]
    if len(several):
        file = several.index[0]
        lines = rows.loc[rows["file"] == file].drop_duplicates("split")
        raise ManifestError(
            f"{manifest.where}: {file!r} is listed in {' and '.join(lines['split'])} "
            f"({', '.join(lines['origin'])}); a clip belongs to one split"
        )
    names = pd.DataFrame({"file": rows["file"], "name": clip_names(rows["file"])}).drop_duplicates()
    shared = names.loc[names["name"].duplicated(keep=False)]
    if len(shared):
        name = shared["name"].iloc[0]
        files = shared.loc[shared["name"] == name, "file"].tolist()
        raise ManifestError(
            f"{manifest.where}: {files[0]!r} and {files[1]!r} would be the same clip {name!r} "
            f"(a clip is named by its file name): rename one"
        )
    for split in splits:
        if not (rows["split"] == split).any():
            raise ManifestError(f"{manifest.where}: no clip in the {split} split; expected at least one")
    return Manifest(manifest.root, rows, manifest.where)


def prepare_split(
    manifest: Manifest,
    split: str,
    decoding: dict,
    out: dict,
    threads: int = 1,
    excluded: frozenset[str] = frozenset(),
    progress: bool = True,
) -> DecodeSummary:
    """Decode the files of one split of a checked manifest into out["audio"] and write its caption
    table (out["captions"]), with out["skipped"] (files that could not be decoded, when
    decoding["on_bad_clip"] is skip) and out["missing"] (listed files not found, at most
    decoding["max_missing_fraction"] of them); files in `excluded` (paths) are left out."""
    rows = manifest.rows.loc[(manifest.rows["split"] == split) & ~manifest.rows["file"].isin(excluded)]
    files = list(dict.fromkeys(rows["file"]))
    if not files:
        raise ManifestError(f"{manifest.where}: no clip left in the {split} split")
    if not manifest.root.is_dir():
        raise ManifestError(f"{manifest.where}: the audio folder {os.fspath(manifest.root)!r} does not exist")
    missing = [file for file in files if not (manifest.root / file).is_file()]
    allowed = decoding["max_missing_fraction"]
    if len(missing) > allowed * len(files):
        raise ManifestError(
            f"{manifest.where}: {len(missing)} of the {len(files)} {split} files are not in "
            f"{os.fspath(manifest.root)!r} "
            f"(more than max_missing_fraction {allowed:.1%}), e.g. {missing[0]!r} "
            f"({rows.loc[rows['file'] == missing[0], 'origin'].iloc[0]})"
        )
    names = clip_names(rows["file"])
    summary = decode_members(
        os.fspath(manifest.where),
        files_in_folder(manifest.root, files),
        len(files),
        out["audio"],
        out["skipped"],
        decoding["sample_rate"],
        decoding["sample_format"],
        threads,
        decoding["on_bad_clip"],
        expected=Expected(frozenset(names), 1.0),  # the share was checked above, naming paths
        missing_csv=out["missing"],
        progress=progress,
    )
    long = pd.DataFrame({"file_name": names, "caption": rows["caption"]})
    write_table_atomically(caption_table_of_clips(long, AudioH5(out["audio"])), out["captions"])
    return summary


def held_out_files(name: str, settings: dict) -> frozenset[Path]:
    """The files of a dataset source's validation and evaluation splits, resolved: what no extra
    training set may hold."""
    manifest = checked(source_of(name, settings).read())
    held_out = manifest.rows.loc[manifest.rows["split"] != "development", "file"]
    return frozenset((manifest.root / file).resolve() for file in held_out.unique())


def prepare_extra(
    manifest: Manifest,
    held_out: frozenset[Path],
    decoding: dict,
    out: dict,
    threads: int = 1,
    progress: bool = True,
) -> DecodeSummary:
    """An extra training set from a manifest: its development rows decoded as prepare_split does,
    less the files in `held_out` (held_out_files), listed in out["excluded"]."""
    manifest = checked(manifest, splits=("development",))
    files = manifest.rows.loc[manifest.rows["split"] == "development", "file"].unique()
    excluded = [file for file in files if (manifest.root / file).resolve() in held_out]
    write_table_atomically(pd.DataFrame({"file": excluded}, columns=["file"]), out["excluded"])
    return prepare_split(manifest, "development", decoding, out, threads, frozenset(excluded), progress)
