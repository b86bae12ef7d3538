"""Data stage: demo generation, ClothoV2 download, decoding to HDF5, caption tables, datasets."""
