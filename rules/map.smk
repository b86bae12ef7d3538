# The map (a configuration with a `map` section, e.g. config/map.yaml): every world is this pipeline
# with its own configuration, as a Snakemake module whose rules are named <world>_<rule>; the map
# rule reads what the points need from the worlds and writes the map. pipeline.sweep expands the
# design; what one world's runs share (stage-1 runs, controls) is built once by that world.

MAP = sweep.expand(config)
for world, spec in MAP["worlds"].items():
    workflow.module(name=world, snakefile="../Snakefile", config=spec["config"])
    workflow.userule(
        rules=["*"], from_module=world, exclude_rules=spec["excluded_rules"], name_modifier=f"{world}_*", lineno=1
    )(lambda: None)


MAP_RANKS = {test_set: map_ranks(test_set) for test_set in config["evaluation"]["sets"]}  # set -> world -> run -> path
MAP_QUALITY, MAP_MASS = map_world_tables("correspondence_quality"), map_world_tables("target_mass")


rule map:
    input:
        ranks=[path for worlds in MAP_RANKS.values() for runs in worlds.values() for path in runs.values()],
        quality=list(MAP_QUALITY.values()),
        mass=list(MAP_MASS.values()),
    output:
        table=f"{OUT}/map/map.csv",
        markdown=f"{OUT}/map/map.md",
        page=report(f"{OUT}/map/map.html", caption="../report/map.rst", category="1. Results"),
        png=report(f"{OUT}/map/map.png", caption="../report/map.rst", category="2. Figures"),
        svg=f"{OUT}/map/map.svg",
    log:
        log_file("map"),
    conda:
        CONDA_ENV
    params:
        points=MAP["points"],
        ranks=MAP_RANKS,
        quality=MAP_QUALITY,
        mass=MAP_MASS,
        axes=[*config["map"]["world_axes"], *config["map"]["run_axes"]],
        resamples=config["map"]["bootstrap_resamples"],
        code=code_of("map"),
    script:
        "../workflow_scripts/map.py"
