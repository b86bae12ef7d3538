# What a researcher reads: the summary table and the figures, also as `snakemake --report report.html`.

COMPARED = ("stage1", "stage2")
GROUPS, PAIRS, SHARES = study.comparison_groups(config, list(STAGE2_JOBS.values()))
TEST_SETS = config["evaluation"]["sets"]
# per-query tables of the best weights of each compared group on each test set: set -> group -> name -> path
RANKS = {
    test_set: {
        group: {
            name: evaluation_file(folder, "ranks.parquet", test_set=test_set)
            for name, folder in model_dirs()[group].items()
        }
        for group in COMPARED
    }
    for test_set in TEST_SETS
}
# log.csv of every training run, by the name the figures give it
TRAINING_LOGS = {
    f"stage {stage[-1]} {name}": trained_files(folder)["log_table"]
    for stage in COMPARED
    for name, folder in model_dirs()[stage].items()
}


rule summary:
    input:
        **{
            f"{test_set}_{group}{suffix}_metrics": list(paths.values())
            for test_set in TEST_SETS
            for weights, suffix in (("best", ""), ("last", "_last"))
            for group, paths in model_metrics(weights, test_set).items()
        },
        quality=[rules.correspondence_quality.output.table] if DEMO else [],
        target_mass=[rules.target_mass.output.table] if DEMO else [],
    output:
        table=report_file("summary.csv"),
        markdown=report_file("summary.md"),
        page=report(report_file("summary.html"), caption="../report/summary.rst", category="1. Results"),
    log:
        log_file("summary"),
    conda:
        CONDA_ENV
    params:
        names={  # set -> weights -> group -> model names, the main set first
            test_set: {
                weights: {group: list(paths) for group, paths in model_metrics(weights, test_set).items()}
                for weights in ("best", "last")
            }
            for test_set in TEST_SETS
        },
        stage2_jobs=list(STAGE2_JOBS.values()),
        reference=config["report"]["reference"],
        code=code_of("summary"),
    script:
        "../workflow_scripts/summary.py"


rule comparisons:
    input:
        **{
            f"{test_set}_{group}_ranks": list(RANKS[test_set][group].values())
            for test_set in TEST_SETS
            for group in COMPARED
        },
    output:
        table=report_file("comparisons.csv"),
        markdown=report_file("comparisons.md"),
        page=report(report_file("comparisons.html"), caption="../report/comparisons.rst", category="1. Results"),
    log:
        log_file("comparisons"),
    conda:
        CONDA_ENV
    params:
        sets=TEST_SETS,
        names={group: list(RANKS[DATASET][group]) for group in COMPARED},
        groups=GROUPS,
        pairs=PAIRS,
        shares=SHARES,
        resamples=config["report"]["bootstrap_resamples"],
        code=code_of("comparisons"),
    script:
        "../workflow_scripts/comparisons.py"


rule plots:
    input:
        logs=list(TRAINING_LOGS.values()),
        summary=rules.summary.output.table,
        comparisons=rules.comparisons.output.table,
        targets=targets_file(study.example_ensemble(config)),
        truth=[truth_file("development")] if DEMO else [],
    output:
        **{
            f"{figure}_{ext}": (
                report(report_file(f"{figure}.{ext}"), caption=f"../report/{figure}.rst", category="2. Figures")
                if ext == "png"
                else report_file(f"{figure}.{ext}")
            )
            for figure in FIGURES
            for ext in ("png", "svg")
        },
    log:
        log_file("plots"),
    conda:
        CONDA_ENV
    params:
        names=list(TRAINING_LOGS),
        example_queries=config["report"]["example_queries"],
        example_top_k=config["report"]["example_top_k"],
        code=code_of("plots"),
    script:
        "../workflow_scripts/plots.py"


# every evaluated model's embeddings of the evaluation split (best weights), by the name the page gives it
LISTENED = {
    name: evaluation_file(folder, "embeddings.h5")
    for group in ("stage1", "ensembles", "stage2", "released")
    for name, folder in model_dirs()[group].items()
}


rule listening_page:
    input:
        embeddings=list(LISTENED.values()),
        audio=data_file("evaluation", "audio.h5"),
        relevance=relevance_input(),
    output:
        report(report_file("listen.html"), caption="../report/listen.rst", category="3. Listen"),
    log:
        log_file("listening_page"),
    conda:
        CONDA_ENV
    params:
        names=list(LISTENED),
        queries=config["report"]["listening_queries"],
        top_k=config["report"]["listening_top_k"],
        code=code_of("listening_page"),
    script:
        "../workflow_scripts/listening_page.py"
