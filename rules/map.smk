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


def world_output(world, rule_name):
    """The declared outputs of a world's rule."""
    return getattr(rules, f"{world}_{rule_name}").output


def map_ranks():
    """world -> run name -> the per-query table of its best weights, for every run the points pair."""
    ranks = {}
    for point in MAP["points"]:
        pattern = str(world_output(point["world"], "evaluate_model").ranks)
        runs = {name: ("stage2", name) for row in point["runs"] + point["controls"] for name in row}
        runs |= {start: ("stage1", start) for start in point["starts"]}
        ranks.setdefault(point["world"], {}).update(
            {name: pattern.format(stage=stage, model=name, weights="best") for name, (stage, name) in runs.items()}
        )
    return ranks


def map_world_tables(rule_name):
    """world -> a demo world's table (correspondence quality or target mass); none beyond the demo."""
    return {world: str(world_output(world, rule_name).table) for world in MAP["worlds"]} if DEMO else {}


rule map:
    input:
        ranks=[path for runs in map_ranks().values() for path in runs.values()],
        quality=list(map_world_tables("correspondence_quality").values()),
        mass=list(map_world_tables("target_mass").values()),
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
        ranks=map_ranks(),
        quality=map_world_tables("correspondence_quality"),
        mass=map_world_tables("target_mass"),
        axes=[*config["map"]["world_axes"], *config["map"]["run_axes"]],
        resamples=config["map"]["bootstrap_resamples"],
        code=code_of("map"),
    script:
        "../workflow_scripts/map.py"
