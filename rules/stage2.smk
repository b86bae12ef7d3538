# Stage 2: fine-tune a stage-1 model on the ensemble's estimated correspondences (or, for a control,
# the same extra epochs with the contrastive loss).


rule train_stage2:
    input:
        unpack(stage2_rule_targets),  # rule_<setting>: an ensemble the target rule reads beside its own
        train_audio=data_file("development", "audio.h5"),
        train_captions=data_file("development", "captions.parquet"),
        val_audio=data_file("validation", "audio.h5"),
        val_captions=data_file("validation", "captions.parquet"),
        tokenizer=tokenizer_input(),
        text_states=text_states_input("development", "validation"),
        init=stage2_init,
        targets=stage2_targets,
        val_relevance=validation_relevance_input(study.stage2_train(config)),
    output:
        **trained_files(model_dir("stage2", "{name}")),
    log:
        log_file("train_stage2", "{name}"),
    benchmark:
        benchmark_file("train_stage2", "{name}")
    wildcard_constraints:
        name="|".join(re.escape(name) for name in STAGE2_JOBS),
    priority: 2
    conda:
        CONDA_ENV
    threads: TRAINING_THREADS
    resources:
        **gpu_resources(GPUS),
        mem_mb=16000,
        runtime=240,
    params:
        run=lambda wildcards: study.training_params(STAGE2_JOBS[wildcards.name]),
        model=config["model"],
        train=study.stage2_train(config),
        gpus=GPUS,
        code=code_of("train"),
    script:
        "../workflow_scripts/train.py"
