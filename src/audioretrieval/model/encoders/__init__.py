"""Audio encoder families, one module each (audioretrieval.model.audio.families finds them)."""
