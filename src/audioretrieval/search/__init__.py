"""Text-to-audio search over any folder of sounds with a trained dual encoder.

    audioretrieval-search index FOLDER --checkpoint best.pt --index sounds.h5 [--batch-size 16] [--device cpu]
        [--save-every 60]
    audioretrieval-search query sounds.h5 "a dog barks in the rain" --checkpoint best.pt [--top 10]
        [--per-file] [--format table|csv|json] [--queries-file FILE] [--relevance FILE] [--output FILE]
    audioretrieval-search info sounds.h5

`index` embeds every .wav/.flac/.ogg/.mp3 file below FOLDER (any case), decoded as the pipeline
decodes, in consecutive segments of the checkpoint's `segment_s` seconds (indexing.py); rerun, it
embeds only new and changed files and drops deleted ones. `query` ranks every segment by cosine
similarity to each query (query.py): a long file can be several hits, one per segment, unless
`--per-file` keeps only its best segment. The index is one HDF5 file (format in store.py) tied to
the checkpoint that built it by the SHA-256 of the checkpoint's bytes; another checkpoint's queries
are refused.
"""

from audioretrieval.search.cli import main

__all__ = ["main"]
