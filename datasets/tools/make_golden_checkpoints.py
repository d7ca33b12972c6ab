"""Random-initialised golden checkpoints for the Java decoders (issue 2), with Hugging Face goldens.

Run on a machine with PyTorch, transformers and tokenizers (the GPU machine has them; no GPU is
used):  python3 datasets/tools/make_golden_checkpoints.py [OUT_ROOT]
OUT_ROOT defaults to gpu-runtime/src/test/resources/golden.

Each checkpoint exercises a different set of ModelConfig quirks, is saved with save_pretrained
(safetensors) in a different dtype, and stays under 2 MB:
  opt            OPT, pre-LayerNorm, tied embeddings, ReLU, biases; float16 on disk
  opt-postln     OPT, do_layer_norm_before=False, word_embed_proj_dim < hidden (project_in/out),
                 layer_norm_elementwise_affine; float32
  llama2         LLaMA-2 style full multi-head attention, untied lm_head, attention_bias,
                 mlp_bias, linear rope scaling; float32, sharded (model.safetensors.index.json)
  llama3-gqa     LLaMA-3 style GQA (8 query heads over 2 KV heads), explicit head_dim != hidden/heads,
                 rope_theta 500000 with llama3 rope scaling, tied embeddings; bfloat16
Weights are random with a wide spread (so greedy decoding is not a coin toss), norms and biases
are perturbed away from their 1/0 initial values so that every parameter matters.
"""
import os
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM,
                          PreTrainedTokenizerFast)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import write_golden  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = 512
PROMPTS = [
    "Emma",
    "It is a truth universally acknowledged, that a single man",
    "She was not at all surprised, but she was very much disappointed; for the letter, which had "
    "been expected for a week, contained nothing of what she wished to hear about her sister.",
]
SEED_TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. Emma Woodhouse, handsome, clever, and rich, with a comfortable "
    "home and happy disposition, seemed to unite some of the best blessings of existence.")


def training_text():
    path = os.path.join(REPO, "datasets", "corpus", "train.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()[:400_000]
    return SEED_TEXT * 50


def make_tokenizer(bos, eos, pad, specials):
    """A small byte-level BPE; the post-processor prepends BOS like the real checkpoints do."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([training_text()], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos,
                                   pad_token=pad)


def perturb(model, std):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and ("norm" in name or "layernorm" in name):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * noise)
                else:
                    p.copy_(0.1 * noise)
            elif p.dim() == 1:  # biases
                p.copy_(0.1 * noise)
            else:
                p.copy_(std * noise)


def save(model, tok, out, dtype, **kw):
    shutil.rmtree(out, ignore_errors=True)
    model.to(dtype).save_pretrained(out, safe_serialization=True, **kw)
    tok.save_pretrained(out)
    model.generation_config.save_pretrained(out)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        REPO, "gpu-runtime", "src", "test", "resources", "golden")
    torch.manual_seed(0)
    opt_tok = make_tokenizer("</s>", "</s>", "<pad>", ["<s>", "<pad>", "</s>", "<unk>"])
    llama_tok = make_tokenizer("<s>", "</s>", "<unk>", ["<unk>", "<s>", "</s>"])

    specs = []
    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, ffn_dim=256,
                    num_attention_heads=4, max_position_embeddings=128, do_layer_norm_before=True,
                    word_embed_proj_dim=64, activation_function="relu", enable_bias=True,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.0)
    specs.append(("opt", OPTForCausalLM(cfg), opt_tok, torch.float16, 0.12, {}))

    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, ffn_dim=192,
                    num_attention_heads=4, max_position_embeddings=128, do_layer_norm_before=False,
                    word_embed_proj_dim=32, activation_function="relu", enable_bias=True,
                    layer_norm_elementwise_affine=True, pad_token_id=1, bos_token_id=2,
                    eos_token_id=2, dropout=0.0)
    specs.append(("opt-postln", OPTForCausalLM(cfg), opt_tok, torch.float32, 0.12, {}))

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=160,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                      rope_scaling={"rope_type": "linear", "factor": 2.0},
                      bos_token_id=1, eos_token_id=2)
    specs.append(("llama2", LlamaForCausalLM(cfg), llama_tok, torch.float32, 0.12,
                  {"max_shard_size": "200KB"}))

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=192,
                      num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
                      head_dim=16, max_position_embeddings=512, rope_theta=500000.0,
                      rms_norm_eps=1e-5, tie_word_embeddings=True,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 64},
                      bos_token_id=1, eos_token_id=2)
    specs.append(("llama3-gqa", LlamaForCausalLM(cfg), llama_tok, torch.bfloat16, 0.12, {}))

    for name, model, tok, dtype, std, kw in specs:
        perturb(model, std)
        if getattr(model.config, "tie_word_embeddings", True):
            model.tie_weights()
        out = os.path.join(root, name)
        save(model, tok, out, dtype, **kw)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        print(f"[checkpoint] {name}: {sum(p.numel() for p in model.parameters())} params, "
              f"{size / 1e6:.2f} MB on disk ({dtype})")
        assert size <= 2_000_000, f"{name} is {size} bytes, over the 2 MB budget"
        write_golden(out, out, PROMPTS, name, model_ref=".", n_greedy=32,
                     dtype_on_disk=str(dtype).replace("torch.", ""))


if __name__ == "__main__":
    main()
