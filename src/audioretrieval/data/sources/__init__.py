"""The dataset sources (data.source beyond ClothoV2 and the demo): one module each (audioretrieval.data.source)."""
