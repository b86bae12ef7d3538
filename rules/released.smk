# The authors' released checkpoint (the reference code's README, "Test our pre-trained model on the ClothoV2
# benchmark"): its parts are downloaded from the JKU cloud (resumable and retried; no checksums are
# published), joined in order, converted into this project's checkpoint format
# (audioretrieval.model.released_checkpoint) and then scored by evaluate_released as every model trained
# here ({out_dir}/released/passt_roberta/evaluation/best/). Only with a `released` section.


if "released" in config:
    RELEASED = config["released"]
    RELEASED_FILE = f"{RELEASED['raw_dir']}/passt_roberta.ckpt"
    RELEASED_PART = f"{RELEASED['raw_dir']}/passt_roberta.{{part}}.ckpt"
    RELEASED_PARTS = range(1, len(RELEASED["urls"]) + 1)

    rule download_released_part:
        output:
            temp(RELEASED_PART),  # removed once joined, as the reference code's script does
        log:
            log_file("download_released_part", "{part}"),
        benchmark:
            benchmark_file("download_released_part", "{part}")
        wildcard_constraints:
            part="|".join(map(str, RELEASED_PARTS)),
        conda:
            CONDA_ENV
        resources:
            runtime=240,
        params:
            url=lambda wildcards: RELEASED["urls"][int(wildcards.part) - 1],
            md5=None,  # the authors publish no checksums of the parts
            download={key: RELEASED[key] for key in ("retries", "backoff_s", "timeout_s")},
            code=code_of("download_file"),
        script:
            "../workflow_scripts/download_file.py"

    rule join_released:
        input:
            expand(RELEASED_PART, part=RELEASED_PARTS),
        output:
            RELEASED_FILE,
        log:
            log_file("join_released"),
        benchmark:
            benchmark_file("join_released")
        conda:
            CONDA_ENV
        params:
            code=code_of("join_released"),
        script:
            "../workflow_scripts/join_released.py"

    rule convert_released:
        input:
            RELEASED_FILE,
        output:
            checkpoint_file(model_dir("released", "passt_roberta"), "best"),
        log:
            log_file("convert_released"),
        benchmark:
            benchmark_file("convert_released")
        conda:
            CONDA_ENV
        resources:
            mem_mb=12000,
        params:
            text_model=RELEASED["text_model"],
            segment_s=config["train"]["segment_s"],
            code=code_of("convert_released"),
        script:
            "../workflow_scripts/convert_released.py"


# A checkpoint of the DCASE 2025 Task 6 baseline (CPJKU/dcase2025_task6_baseline, its README's: trained on
# Clotho, AudioCaps and WavCaps, 40.59 mAP@16): downloaded (its MD5 checked when configured), converted
# (audioretrieval.model.dcase2025_checkpoint) and scored by evaluate_released
# ({out_dir}/released/dcase2025_baseline/evaluation/best/). Only with a `dcase2025_baseline` section.
if "dcase2025_baseline" in config:
    BASELINE = config["dcase2025_baseline"]
    BASELINE_FILE = f"{BASELINE['raw_dir']}/dcase2025_baseline.ckpt"

    rule download_dcase2025_baseline:
        output:
            BASELINE_FILE,
        log:
            log_file("download_dcase2025_baseline"),
        benchmark:
            benchmark_file("download_dcase2025_baseline")
        conda:
            CONDA_ENV
        resources:
            runtime=240,
        params:
            url=BASELINE["url"],
            md5=BASELINE["md5"],
            download={key: BASELINE[key] for key in ("retries", "backoff_s", "timeout_s")},
            code=code_of("download_file"),
        script:
            "../workflow_scripts/download_file.py"

    rule convert_dcase2025_baseline:
        input:
            BASELINE_FILE,
        output:
            checkpoint_file(model_dir("released", "dcase2025_baseline"), "best"),
        log:
            log_file("convert_dcase2025_baseline"),
        benchmark:
            benchmark_file("convert_dcase2025_baseline")
        conda:
            CONDA_ENV
        resources:
            mem_mb=12000,
        params:
            text_model=BASELINE["text_model"],
            segment_s=config["train"]["segment_s"],
            code=code_of("convert_dcase2025_baseline"),
        script:
            "../workflow_scripts/convert_dcase2025_baseline.py"
