# Evaluation: every training run embeds the evaluation split with its best and with its last weights
# (one job, so one start-up; the split is read once per checkpoint), the released checkpoint with its
# best; every ensemble of several members (used directly) is scored from its members' best, each from
# those embeddings; the DCASE 2025 multi-positive mAP where a relevance table exists.


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


rule evaluate_model:  # a training run: its best and its last weights, in one job (one start-up)
    input:
        **evaluation_inputs(
            [checkpoint_file(model_dir("{stage}", "{model}"), weights) for weights in TRAINED_WEIGHTS],
            text_states_input("evaluation"),
        ),
    output:
        **model_evaluation_files(model_dir("{stage}", "{model}"), TRAINED_WEIGHTS),
    log:
        log_file("evaluate_model", "{stage}", "{model}"),
    benchmark:
        benchmark_file("evaluate_model", "{stage}", "{model}")
    wildcard_constraints:
        stage="stage1|stage2",
        model=r"[^/]+",
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


use rule evaluate_model as evaluate_released with:  # a converted checkpoint: best only, no shared text states
    input:
        **evaluation_inputs([checkpoint_file(model_dir("released", "{model}"), "best")], []),
    output:
        **model_evaluation_files(model_dir("released", "{model}"), ["best"]),
    log:
        log_file("evaluate_released", "{model}"),
    benchmark:
        benchmark_file("evaluate_released", "{model}")


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


if FURTHER_SETS:  # the same on each further test set (evaluation.sets), in evaluation/{test_set}/

    use rule evaluate_model as evaluate_model_on_set with:
        input:
            **evaluation_inputs(
                [checkpoint_file(model_dir("{stage}", "{model}"), weights) for weights in TRAINED_WEIGHTS],
                [],
                "{test_set}",
            ),
        output:
            **model_evaluation_files(model_dir("{stage}", "{model}"), TRAINED_WEIGHTS, "{test_set}"),
        log:
            log_file("evaluate_model", "{test_set}", "{stage}", "{model}"),
        benchmark:
            benchmark_file("evaluate_model", "{test_set}", "{stage}", "{model}")
        wildcard_constraints:
            stage="stage1|stage2",
            model=r"[^/]+",
            test_set="|".join(FURTHER_SETS),

    use rule evaluate_model as evaluate_released_on_set with:
        input:
            **evaluation_inputs([checkpoint_file(model_dir("released", "{model}"), "best")], [], "{test_set}"),
        output:
            **model_evaluation_files(model_dir("released", "{model}"), ["best"], "{test_set}"),
        log:
            log_file("evaluate_released", "{test_set}", "{model}"),
        benchmark:
            benchmark_file("evaluate_released", "{test_set}", "{model}")
        wildcard_constraints:
            model=r"[^/]+",
            test_set="|".join(FURTHER_SETS),

    use rule evaluate_ensemble as evaluate_ensemble_on_set with:
        input:
            members=ensemble_evaluation_members,
            relevance=[],
        output:
            **{
                key: evaluation_file(ensemble_dir("{ensemble}"), name, test_set="{test_set}")
                for key, name in EVALUATION_FILES.items()
            },
        log:
            log_file("evaluate_ensemble", "{test_set}", "{ensemble}"),
        benchmark:
            benchmark_file("evaluate_ensemble", "{test_set}", "{ensemble}")
        wildcard_constraints:
            ensemble=r"[^/]+",
            test_set="|".join(FURTHER_SETS),
