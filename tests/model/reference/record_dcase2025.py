"""Records a checkpoint written by the DCASE 2025 Task 6 baseline's own code, and what its model
computes, for tests/model/test_dcase2025_checkpoint.py.

Run with the baseline (github.com/CPJKU/dcase2025_task6_baseline, d25_t6/) on the path, in an
environment that has its lightning (2.5.0.post0), and the tiny tokenizer the tests build:

    python tests/model/reference/record_dcase2025.py BASELINE_DIR TOKENIZER_DIR tests/model/reference

The baseline's AudioRetrievalModel is built by its own __init__ at a small size: its three
downloads are replaced (RobertaTokenizer.from_pretrained by the tiny tokenizer, RobertaModel.
from_pretrained by a one-layer RoBERTa of width 32, get_model_passt by a one-block PaSST of width
32, both random) and its projections narrowed to those widths. Lightning's Trainer writes the
checkpoint (dcase2025_baseline_small.ckpt). Its forward_audio and forward_text then embed two
clips (30 s and 14 s of seeded noise, clips()) and three captions (dcase2025_baseline_small.pt).
"""

import sys

import numpy as np
import torch

baseline, tokenizer_dir, out = sys.argv[1:4]
sys.path.insert(0, baseline)

import d25_t6.passt  # noqa: E402
import transformers  # noqa: E402
from d25_t6.retrieval_module import AudioRetrievalModel  # noqa: E402
from hear21passt.models.passt import PaSST  # noqa: E402
from lightning import pytorch as pl  # noqa: E402

WIDTH, TEXT = 32, dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
CAPTIONS = ["A dog barks, twice!", "rain on a tin roof", "A high tone and a LOW hum."]
tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)


def small_roberta(name, add_pooling_layer, **dropout_and_outputs):
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=50,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT,
        **dropout_and_outputs,
    )
    return transformers.RobertaModel(config, add_pooling_layer=add_pooling_layer)


def small_passt(arch, input_tdim, fstride, tstride, s_patchout_t, s_patchout_f):
    return PaSST(
        img_size=(128, input_tdim),
        stride=(fstride, tstride),
        embed_dim=WIDTH,
        depth=1,
        num_heads=2,
        distilled=True,
        s_patchout_t=s_patchout_t,
        s_patchout_f=s_patchout_f,
    )


def clips() -> tuple[torch.Tensor, list[float]]:
    """Two clips at 32 kHz in a 30 s segment: 30 s of noise, and 14 s of noise then zeros."""
    audio = 0.1 * np.random.default_rng(0).standard_normal((2, 30 * 32000)).astype(np.float32)
    audio[1, 14 * 32000 :] = 0
    return torch.from_numpy(audio), [30.0, 14.0]


transformers.RobertaTokenizer.from_pretrained = staticmethod(lambda name, **kwargs: tokenizer)
transformers.RobertaModel.from_pretrained = staticmethod(small_roberta)
d25_t6.passt.get_model_passt = small_passt

# train.py's defaults that reach the model
hyper_parameters = dict(
    s_patchout_t=15,
    s_patchout_f=2,
    roberta_base=False,
    initial_tau=0.05,
    tau_trainable=False,
    compile=False,
    max_lr=2e-5,
    min_lr=1e-7,
    warmup_epochs=1,
    rampdown_epochs=15,
    seed=21208,
)
torch.manual_seed(0)
model = AudioRetrievalModel(**hyper_parameters)
model.audio_projection = torch.nn.Linear(WIDTH, 1024)
model.text_projection = torch.nn.Linear(TEXT["hidden_size"], 1024)
with torch.no_grad():  # every tensor distinct, so that a swapped mapping shows
    for name, parameter in model.named_parameters():
        if name != "tau":
            parameter.add_(torch.randn_like(parameter) * 0.05)
model.eval()

trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", devices=1)
trainer.strategy.connect(model)
trainer.save_checkpoint(f"{out}/dcase2025_baseline_small.ckpt")

audio, durations = clips()
with torch.no_grad():
    audio_embeddings = model.forward_audio({"audio": audio[:, None], "duration": durations})
    text_embeddings = model.forward_text({"captions": [[caption] for caption in CAPTIONS]})
torch.save(
    {
        "captions": CAPTIONS,
        "input_ids": tokenizer(CAPTIONS)["input_ids"],  # of the raw captions: the tokenizer the test builds is this one
        "durations": durations,
        "audio": audio_embeddings,
        "text": text_embeddings,
    },
    f"{out}/dcase2025_baseline_small.pt",
)
print(f"wrote {out}/dcase2025_baseline_small.ckpt and .pt: {len(model.state_dict())} tensors")
