# Language-based audio retrieval with estimated audio-caption correspondences, as a chain of files.
# Without --configfile the bundled demo runs (config/demo.yaml); the paper's setting is
# config/config.yaml. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")

if not workflow.overwrite_configfiles:

    configfile: "config/demo.yaml"


validate(config, "config/schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


if "map" in config:

    include: "rules/map.smk"

    rule all:
        default_target: True
        input:
            rules.map.output,

else:

    include: "rules/data.smk"
    include: "rules/extra_data.smk"
    include: "rules/stage1.smk"
    include: "rules/correspondences.smk"
    include: "rules/stage2.smk"
    include: "rules/evaluation.smk"
    include: "rules/released.smk"
    include: "rules/report.smk"

    rule all:
        default_target: True
        input:
            all_outputs(),
