# Correspondence estimation: per-model embeddings of the training split, ensemble targets, and
# (on the demo, which knows the truth) how well they separate true from false correspondences.


rule export_embeddings:
    input:
        checkpoint=rules.train_stage1.output.best,
        audio=data_file("development", "audio.h5"),
        captions=data_file("development", "captions.parquet"),
    output:
        embeddings_file("{run}"),
    wildcard_constraints:
        run=r"seed\d+",
    params:
        batch_size=config["train"]["eval_batch_size"],
        precision=config["train"]["precision"],
        gpus=min(1, GPUS),
        code=code_of("embed_split"),
    priority: 3
    threads: config["train"]["num_workers"] + 1  # DataLoader workers and the main process
    resources:
        mem_mb=8000,
        runtime=60,
        **gpu_resources(min(1, GPUS)),
    log:
        log_file("export_embeddings", "{run}"),
    benchmark:
        benchmark_file("export_embeddings", "{run}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/embed_split.py"


rule ensemble_targets:
    input:
        ensemble_members,
    output:
        targets_file("{ensemble}"),
    wildcard_constraints:
        ensemble="|".join(re.escape(name) for name in ENSEMBLES),
    params:
        code=code_of("ensemble_targets"),
    priority: 3
    resources:
        mem_mb=4000,
    log:
        log_file("ensemble_targets", "{ensemble}"),
    benchmark:
        benchmark_file("ensemble_targets", "{ensemble}")
    conda:
        CONDA_ENV
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
        params:
            code=code_of("oracle_targets"),
        log:
            log_file("oracle_targets"),
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/oracle_targets.py"


if DEMO:
    TARGET_MASS_ROWS = study.target_mass_rows(config, STAGE2_JOBS.values())

    rule target_mass:
        input:
            targets=[targets_file(row["ensemble"]) for row in TARGET_MASS_ROWS],
            truth=truth_file("development"),
        output:
            table=f"{OUT}/correspondences/target_mass.csv",
            markdown=f"{OUT}/correspondences/target_mass.md",
        params:
            rows=TARGET_MASS_ROWS,
            batch_size={**config["train"], **config["stage2"]["train"]}["batch_size"],
            code=code_of("target_mass"),
        log:
            log_file("target_mass"),
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/target_mass.py"

    rule correspondence_quality:
        input:
            members=[embeddings_file(run) for run in STAGE1_RUNS],
            ensembles=[targets_file(name) for name in study.multi_member_ensembles(config)],
            truth=truth_file("development"),
        output:
            table=f"{OUT}/correspondences/quality.csv",
            markdown=f"{OUT}/correspondences/quality.md",
        params:
            members=STAGE1_RUNS,
            ensembles=study.multi_member_ensembles(config),
            code=code_of("correspondence_quality"),
        log:
            log_file("correspondence_quality"),
        benchmark:
            benchmark_file("correspondence_quality")
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/correspondence_quality.py"
