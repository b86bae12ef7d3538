# Correspondence estimation: per-model embeddings of the training split, ensemble targets, and
# (on the demo, which knows the truth) how well they separate true from false correspondences.


rule export_embeddings:
    input:
        checkpoint=rules.train_stage1.output.best,
        audio=data_file("development", "audio.h5"),
        captions=data_file("development", "captions.parquet"),
        text_states=text_states_input("development"),
    output:
        embeddings_file("{run}"),
    log:
        log_file("export_embeddings", "{run}"),
    benchmark:
        benchmark_file("export_embeddings", "{run}")
    wildcard_constraints:
        run=STAGE1_RUN_NAME,
    priority: 3
    conda:
        CONDA_ENV
    threads: config["train"]["num_workers"] + 1  # DataLoader workers and the main process
    resources:
        **gpu_resources(min(1, GPUS)),
        mem_mb=8000,
        runtime=60,
    params:
        batch_size=config["train"]["eval_batch_size"],
        precision=config["train"]["precision"],
        gpus=min(1, GPUS),
        code=code_of("embed_split"),
    script:
        "../workflow_scripts/embed_split.py"


if study.uses_captions(config):

    rule embed_captions:
        input:
            audio=data_file("development", "audio.h5"),
            captions=data_file("development", "captions.parquet"),
        output:
            CAPTION_FILE,
        log:
            log_file("embed_captions"),
        benchmark:
            benchmark_file("embed_captions")
        priority: 3
        conda:
            CONDA_ENV
        threads: 1
        resources:
            **gpu_resources(min(1, GPUS)),
            mem_mb=4000,
            runtime=30,
        params:
            settings=config["correspondences"]["captions"],
            gpus=min(1, GPUS),
            code=code_of("embed_captions"),
        script:
            "../workflow_scripts/embed_captions.py"


rule ensemble_targets:
    input:
        ensemble_members,
    output:
        targets_file("{ensemble}"),
    log:
        log_file("ensemble_targets", "{ensemble}"),
    benchmark:
        benchmark_file("ensemble_targets", "{ensemble}")
    wildcard_constraints:
        ensemble="|".join(re.escape(name) for name in ENSEMBLES),
    priority: 3
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
    params:
        caption_aggregation=lambda wildcards: study.caption_aggregation(ENSEMBLES[wildcards.ensemble]),
        code=code_of("ensemble_targets"),
    script:
        "../workflow_scripts/ensemble_targets.py"


if study.uses_oracle(STAGE2_JOBS.values()):

    rule oracle_targets:
        input:
            audio=data_file("development", "audio.h5"),
            captions=data_file("development", "captions.parquet"),
            truth=truth_file("development"),
        output:
            targets_file(study.ORACLE),
        log:
            log_file("oracle_targets"),
        conda:
            CONDA_ENV
        params:
            code=code_of("oracle_targets"),
        script:
            "../workflow_scripts/oracle_targets.py"


if DEMO:
    TARGET_MASS_ROWS = [
        {
            **row,
            "files": {
                "targets": targets_file(row["ensemble"]),
                **{setting: targets_file(ensemble) for setting, ensemble in row["rule_ensembles"].items()},
            },
        }
        for row in study.target_mass_rows(config, STAGE2_JOBS.values())
    ]

    rule target_mass:
        input:
            targets=sorted({path for row in TARGET_MASS_ROWS for path in row["files"].values()}),
            truth=truth_file("development"),
        output:
            table=f"{OUT}/correspondences/target_mass.csv",
            markdown=f"{OUT}/correspondences/target_mass.md",
        log:
            log_file("target_mass"),
        conda:
            CONDA_ENV
        params:
            rows=TARGET_MASS_ROWS,
            batch_size=study.stage2_train(config)["batch_size"],
            code=code_of("target_mass"),
        script:
            "../workflow_scripts/target_mass.py"

    # every estimator's row: the stage-1 models, the caption estimator, the ensembles of several members
    QUALITY_SOURCES = {run: embeddings_file(run) for run in STAGE1_RUNS}
    QUALITY_SOURCES |= {study.CAPTIONS: CAPTION_FILE} if study.uses_captions(config) else {}  # as configured
    QUALITY_SOURCES |= {
        study.quality_row(name, ENSEMBLES[name]): targets_file(name)
        for name in study.multi_member_ensembles(config)
    }

    rule correspondence_quality:
        input:
            sources=list(QUALITY_SOURCES.values()),
            truth=truth_file("development"),
        output:
            table=f"{OUT}/correspondences/quality.csv",
            markdown=f"{OUT}/correspondences/quality.md",
        log:
            log_file("correspondence_quality"),
        benchmark:
            benchmark_file("correspondence_quality")
        conda:
            CONDA_ENV
        params:
            rows=list(QUALITY_SOURCES),
            code=code_of("correspondence_quality"),
        script:
            "../workflow_scripts/correspondence_quality.py"
