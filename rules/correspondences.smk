# Correspondence estimation: per-model embeddings of the training split, ensemble targets, and
# (on the demo, which knows the truth) how well they separate true from false correspondences.


rule export_embeddings:
    input:
        checkpoint=f"{OUT}/stage1/{{run}}/best.pt",
        audio=data_file("development", "audio.h5"),
        captions=data_file("development", "captions.parquet"),
    output:
        embeddings=f"{OUT}/stage1/{{run}}/embeddings/development.h5",
        top_k=f"{OUT}/stage1/{{run}}/embeddings/top_k.parquet",
    wildcard_constraints:
        run=r"seed\d+",
    params:
        top_k=config["correspondences"]["top_k"],
        batch_size=config["train"]["eval_batch_size"],
        precision=config["train"]["precision"],
        gpus=min(1, config["stage1"]["gpus"]),
        code=code_of("export_embeddings"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        **gpu_resources(min(1, config["stage1"]["gpus"])),
    log:
        log_file("export_embeddings", "{run}"),
    benchmark:
        benchmark_file("export_embeddings", "{run}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/export_embeddings.py"


rule ensemble_targets:
    input:
        ensemble_members,
    output:
        targets_file("{ensemble}"),
    wildcard_constraints:
        ensemble="|".join(re.escape(name) for name in config["correspondences"]["ensembles"]),
    params:
        code=code_of("ensemble_targets"),
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


if uses_oracle():

    rule oracle_targets:
        input:
            audio=data_file("development", "audio.h5"),
            captions=data_file("development", "captions.parquet"),
            truth=raw_file("demo_correspondences_development.parquet"),
        output:
            targets_file(ORACLE),
        params:
            code=code_of("oracle_targets"),
        log:
            log_file("oracle_targets"),
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/oracle_targets.py"


if config["data"]["source"] == "demo":

    rule target_mass:
        input:
            targets=[targets_file(row["ensemble"]) for row in target_mass_rows()],
            truth=raw_file("demo_correspondences_development.parquet"),
        output:
            table=f"{OUT}/correspondences/target_mass.csv",
            markdown=f"{OUT}/correspondences/target_mass.md",
        params:
            rows=target_mass_rows(),
            batch_size=stage2_train_settings()["batch_size"],
            code=code_of("target_mass"),
        log:
            log_file("target_mass"),
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/target_mass.py"

    rule correspondence_quality:
        input:
            members=[embeddings_of(seed) for seed in config["stage1"]["seeds"]],
            ensembles=[targets_file(name) for name in multi_member_ensembles()],
            truth=raw_file("demo_correspondences_development.parquet"),
        output:
            table=f"{OUT}/correspondences/quality.csv",
            markdown=f"{OUT}/correspondences/quality.md",
        params:
            members=[f"seed{seed}" for seed in config["stage1"]["seeds"]],
            ensembles=multi_member_ensembles(),
            code=code_of("correspondence_quality"),
        log:
            log_file("correspondence_quality"),
        benchmark:
            benchmark_file("correspondence_quality")
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/correspondence_quality.py"
