# What a researcher reads: the summary table and the figures, also as `snakemake --report report.html`.


rule summary:
    input:
        **{f"{group}_metrics": list(paths.values()) for group, paths in model_metrics().items()},
        quality=[f"{OUT}/correspondences/quality.csv"] if config["data"]["source"] == "demo" else [],
    output:
        table=report(report_file("summary.csv"), caption="../report/summary.rst", category="1. Results"),
        markdown=report_file("summary.md"),
    params:
        names={group: list(paths) for group, paths in model_metrics().items()},
        stage2_notes={
            run["name"]: f"from seed{run['init']} on ensemble {run['ensemble']}, "
            f"w_dist {run['dist_weight']:g}, w_sup {run['sup_weight']:g}"
            for run in config["stage2"]["runs"]
        },
        reference=config["report"]["reference"],
        code=library_code("summary", "data.tables", "files"),
    log:
        log_file("summary"),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/summary.py"


rule plots:
    input:
        logs=list(training_logs().values()),
        summary=report_file("summary.csv"),
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
        code=library_code("plots", "evaluate", "export", "quality", "summary"),
    log:
        log_file("plots"),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/plots.py"
