"""Language-based audio retrieval trained with estimated audio-caption correspondences."""
