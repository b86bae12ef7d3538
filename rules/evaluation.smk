# Evaluation: every model embeds the evaluation split with its best and with its last weights, every
# ensemble (used directly) is scored from its members' best, and each from those embeddings; the
# DCASE 2025 multi-positive mAP where a relevance table exists.


if config["data"]["source"] != "demo" and config["evaluation"]["relevance_url"]:

    rule download_relevance:
        output:
            raw_file(RELEVANCE_FILE),
        params:
            url=config["evaluation"]["relevance_url"],
            md5=config["evaluation"]["relevance_md5"],
            download=config["download"],
            code=code_of("download_file"),
        log:
            log_file("download_relevance"),
        benchmark:
            benchmark_file("download_relevance")
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/download_file.py"


rule evaluate_model:
    input:
        checkpoint=f"{OUT}/{{stage}}/{{model}}/{{weights}}.pt",
        audio=data_file("evaluation", "audio.h5"),
        captions=data_file("evaluation", "captions.parquet"),
        relevance=relevance_input(),
    output:
        embeddings=evaluation_file(f"{OUT}/{{stage}}/{{model}}", "embeddings.h5", "{weights}"),
        metrics=evaluation_file(f"{OUT}/{{stage}}/{{model}}", "metrics.json", "{weights}"),
        ranks=evaluation_file(f"{OUT}/{{stage}}/{{model}}", "ranks.parquet", "{weights}"),
    wildcard_constraints:
        stage="stage1|stage2|released",
        model=r"[^/]+",
        weights="best|last",
    params:
        batch_size=config["train"]["eval_batch_size"],
        precision=config["train"]["precision"],
        gpus=min(1, config["stage1"]["gpus"]),
        code=code_of("evaluate_model"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
        **gpu_resources(min(1, config["stage1"]["gpus"])),
    log:
        log_file("evaluate_model", "{stage}", "{model}", "{weights}"),
    benchmark:
        benchmark_file("evaluate_model", "{stage}", "{model}", "{weights}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/evaluate_model.py"


rule evaluate_ensemble:
    input:
        members=ensemble_evaluation_members,
        relevance=relevance_input(),
    output:
        embeddings=evaluation_file(ensemble_dir("{ensemble}"), "embeddings.h5"),
        metrics=evaluation_file(ensemble_dir("{ensemble}"), "metrics.json"),
        ranks=evaluation_file(ensemble_dir("{ensemble}"), "ranks.parquet"),
    params:
        code=code_of("evaluate_ensemble"),
    resources:
        mem_mb=4000,
    log:
        log_file("evaluate_ensemble", "{ensemble}"),
    benchmark:
        benchmark_file("evaluate_ensemble", "{ensemble}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/evaluate_ensemble.py"
