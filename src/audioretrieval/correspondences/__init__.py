"""Estimated audio-caption correspondences: ensembles of stage-1 models, the caption estimator,
target rules, their quality against the demo's truth."""

CAPTIONS = "captions"  # the ensemble member that names the caption estimator (correspondences.ensembles)


def is_caption_member(member) -> bool:
    """`captions` (the configured aggregation) or `captions:<aggregation>` (correspondences.captions)."""
    return isinstance(member, str) and member.split(":")[0] == CAPTIONS


def member_aggregation(member) -> str | None:
    """The aggregation a caption member names (None: correspondences.captions.aggregation)."""
    return member.split(":", 1)[1] if is_caption_member(member) and ":" in member else None
