from pathlib import Path

from audioretrieval.data.download import verify_md5
from audioretrieval.files import write_text_atomically
from audioretrieval.pipeline.workflow import logged_to

path = Path(snakemake.input[0])
with logged_to(snakemake.log[0]) as log:
    md5 = verify_md5(path, snakemake.params.md5, snakemake.params.hint)
    write_text_atomically(f"{md5}  {path.name}\n", snakemake.output[0])
    log.info("%s: MD5 %s as expected (%d bytes)", path, md5, path.stat().st_size)
