# Evaluation: every model embeds the evaluation split with its best and with its last weights, every
# ensemble of several members (used directly) is scored from its members' best, each from those
# embeddings; the DCASE 2025 multi-positive mAP where a relevance table exists.


if not DEMO and config["evaluation"]["relevance_url"]:

    rule download_relevance:
        output:
            RELEVANCE_FILE,
        log:
            log_file("download_relevance"),
        benchmark:
            benchmark_file("download_relevance")
        conda:
            CONDA_ENV
        params:
            url=config["evaluation"]["relevance_url"],
            md5=config["evaluation"]["relevance_md5"],
            download=config["download"],
            code=code_of("download_file"),
        script:
            "../workflow_scripts/download_file.py"


rule evaluate_model:
    input:
        checkpoint=checkpoint_file(model_dir("{stage}", "{model}"), "{weights}"),
        audio=data_file("evaluation", "audio.h5"),
        captions=data_file("evaluation", "captions.parquet"),
        relevance=relevance_input(),
        text_states=lambda wildcards: [] if wildcards.stage == "released" else text_states_input("evaluation"),
    output:
        **{
            key: evaluation_file(model_dir("{stage}", "{model}"), name, "{weights}")
            for key, name in EVALUATION_FILES.items()
        },
    log:
        log_file("evaluate_model", "{stage}", "{model}", "{weights}"),
    benchmark:
        benchmark_file("evaluate_model", "{stage}", "{model}", "{weights}")
    wildcard_constraints:
        stage="stage1|stage2|released",
        model=r"[^/]+",
        weights="best|last",
    priority: 1  # before the demo's quality tables: the report waits for the last evaluation
    conda:
        CONDA_ENV
    threads: config["train"]["num_workers"] + 1  # DataLoader workers and the main process
    resources:
        **gpu_resources(min(1, GPUS)),
        mem_mb=8000,
        runtime=30,
    params:
        batch_size=config["train"]["eval_batch_size"],
        precision=config["train"]["precision"],
        gpus=min(1, GPUS),
        code=code_of("evaluate_model"),
    script:
        "../workflow_scripts/evaluate_model.py"


rule evaluate_ensemble:
    input:
        members=ensemble_evaluation_members,
        relevance=relevance_input(),
    output:
        **{key: evaluation_file(ensemble_dir("{ensemble}"), name) for key, name in EVALUATION_FILES.items()},
    log:
        log_file("evaluate_ensemble", "{ensemble}"),
    benchmark:
        benchmark_file("evaluate_ensemble", "{ensemble}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
    params:
        code=code_of("evaluate_ensemble"),
    script:
        "../workflow_scripts/evaluate_ensemble.py"
