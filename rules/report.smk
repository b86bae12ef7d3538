# What a researcher reads: the summary table and the figures, also as `snakemake --report report.html`.


rule summary:
    input:
        **{f"{group}_metrics": list(paths.values()) for group, paths in model_metrics().items()},
        **{f"{group}_last_metrics": list(paths.values()) for group, paths in model_metrics("last").items()},
        quality=[f"{OUT}/correspondences/quality.csv"] if config["data"]["source"] == "demo" else [],
        target_mass=[f"{OUT}/correspondences/target_mass.csv"] if config["data"]["source"] == "demo" else [],
    output:
        table=report_file("summary.csv"),
        markdown=report_file("summary.md"),
        page=report(report_file("summary.html"), caption="../report/summary.rst", category="1. Results"),
    params:
        names={weights: {group: list(paths) for group, paths in model_metrics(weights).items()} for weights in ("best", "last")},
        stage2_jobs=STAGE2_JOBS,
        reference=config["report"]["reference"],
        code=code_of("summary"),
    log:
        log_file("summary"),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/summary.py"


rule comparisons:
    input:
        **{f"{group}_ranks": list(ranks_of(group).values()) for group in ("stage1", "stage2")},
    output:
        table=report_file("comparisons.csv"),
        markdown=report_file("comparisons.md"),
        page=report(report_file("comparisons.html"), caption="../report/comparisons.rst", category="1. Results"),
    params:
        names={group: list(ranks_of(group)) for group in ("stage1", "stage2")},
        groups=comparison_groups()[0],
        pairs=comparison_groups()[1],
        shares=comparison_groups()[2],
        resamples=config["report"]["bootstrap_resamples"],
        code=code_of("comparisons"),
    log:
        log_file("comparisons"),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/comparisons.py"


rule plots:
    input:
        logs=list(training_logs().values()),
        summary=report_file("summary.csv"),
        comparisons=report_file("comparisons.csv"),
        targets=targets_file(example_ensemble()),
        truth=[raw_file("demo_correspondences_development.parquet")] if config["data"]["source"] == "demo" else [],
    output:
        **{
            f"{figure}_{ext}": report(report_file(f"{figure}.{ext}"), caption=f"../report/{figure}.rst", category="2. Figures")
            if ext == "png"
            else report_file(f"{figure}.{ext}")
            for figure in FIGURES
            for ext in ("png", "svg")
        },
    params:
        names=list(training_logs()),
        example_queries=config["report"]["example_queries"],
        example_top_k=config["report"]["example_top_k"],
        code=code_of("plots"),
    log:
        log_file("plots"),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/plots.py"
