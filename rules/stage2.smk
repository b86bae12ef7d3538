# Stage 2: fine-tune a stage-1 model on the ensemble's estimated correspondences.


rule train_stage2:
    input:
        train_audio=data_file("development", "audio.h5"),
        train_captions=data_file("development", "captions.parquet"),
        val_audio=data_file("validation", "audio.h5"),
        val_captions=data_file("validation", "captions.parquet"),
        tokenizer=tokenizer_input(),
        init=stage2_init,
        targets=stage2_targets,
    output:
        best=f"{stage2_dir('{name}')}/best.pt",
        last=f"{stage2_dir('{name}')}/last.pt",
        log_table=f"{stage2_dir('{name}')}/log.csv",
    params:
        run=stage2_training_params,
        model=config["model"],
        train=stage2_train_settings(),
        gpus=config["stage1"]["gpus"],
        code=code_of("train_stage2"),
    threads: config["train"]["num_workers"] + 1
    resources:
        mem_mb=16000,
        runtime=240,
        **gpu_resources(config["stage1"]["gpus"]),
    log:
        log_file("train_stage2", "{name}"),
    benchmark:
        benchmark_file("train_stage2", "{name}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/train_stage2.py"
