#!/usr/bin/env python3
"""Trains the bundled models tiny-opt and tiny-llama (issue 3), evaluates them, writes goldens.

Run on the GPU machine (PyTorch, transformers, tokenizers, safetensors, pyarrow; no network), from
the repository root:

    PYTHONUNBUFFERED=1 python3 datasets/tools/train_tiny_models.py

Steps (all seeded; everything printed):
  1. A byte-level BPE tokenizer (vocab 8192; <pad>=0, <s>=1 BOS, </s>=2 EOS; ByteLevel
     pre-tokenizer without prefix space, ByteLevel decoder, no normalizer; a TemplateProcessing
     post-processor that prepends <s> like LLaMA and appends nothing) trained with `tokenizers` on
     datasets/corpus/train.txt.
  2. Training sequences: train.txt tokenized as one string without special tokens, cut into
     511-token chunks (a fresh random start offset every epoch), each prefixed with <s> (length
     512). Validation likewise from validation.txt (offset 0, final short window kept).
  3. For each model, bf16 autocast, AdamW, linear warmup + cosine decay to 10 %, grad clip 1.0,
     validation every half epoch, early stopping (patience), best weights kept. Run A uses a
     24-epoch schedule; if it stops early, run B starts again from the same initialisation with
     the cosine schedule sized to A's best epoch (x1.3), so the learning rate has annealed where
     the validation loss bottoms out; if A was still improving when its schedule ended, run B
     uses a 40-epoch schedule. The run with the lower validation loss is kept. A wall-clock cap
     bounds each model's training.
  4. save_pretrained (safetensors): tiny-opt in float16, tiny-llama in bfloat16, with
     tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json.
  5. Each SAVED model is reloaded on the GPU in float32 (TF32 off) and evaluated: validation and
     test perplexity (non-overlapping 511-token windows, each prefixed with <s>, every token
     scored once), an add-one unigram baseline on the same tokens, perplexity on the passages of
     datasets/eval/perplexity.jsonl, and lm-eval style multiple-choice accuracy on
     datasets/eval/mc_cloze.jsonl. Results go to datasets/models/<name>/eval_results.json.
  6. Golden files (datasets/tools/golden.py, computed on the CPU in float32) into
     gpu-runtime/src/test/resources/golden/<name>/.
  7. datasets/prompts/to_parquet.py, if present.

Options: --time-per-model SECONDS (training cap per model, default 180), --eval-only (skip
tokenizer and training; evaluate the checkpoints already in datasets/models and write goldens),
--models tiny-opt,tiny-llama, --device, --quick (tiny settings for a dry run on a CPU; output
goes to --out-root, never into the repository's model directories unless asked).
"""
import argparse
import copy
import datetime
import json
import math
import os
import platform
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from golden import write_golden  # noqa: E402

CORPUS = os.path.join(REPO, "datasets", "corpus")
EVAL_DIR = os.path.join(REPO, "datasets", "eval")
GOLDEN_ROOT = os.path.join(REPO, "gpu-runtime", "src", "test", "resources", "golden")

VOCAB = 8192
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<s>", "</s>"]
CTX = 512                       # model context; training windows are BOS + 511 tokens
WIN = CTX - 1
MAX_DIR_BYTES = 12_000_000      # each model directory, everything included
SIZE_ALLOWANCE = 50_000         # room kept for eval_results.json

# Golden prompts: a short one, and ~40 words of held-out text (Persuasion, test split).
GOLDEN_PROMPTS = [
    "Captain Wentworth looked at",
    "Anne was to leave them on the morrow, an event which they all dreaded.\n"
    "\"What should they do without her?  They were wretched comforters for\n"
    "one another.\"  And so much was said in this way, that Anne thought she",
]

MODELS = {
    "tiny-opt": dict(
        arch="opt", dtype="float16",
        config=dict(vocab_size=VOCAB, hidden_size=192, num_hidden_layers=6, ffn_dim=768,
                    num_attention_heads=8, max_position_embeddings=CTX,
                    do_layer_norm_before=True, word_embed_proj_dim=192,
                    activation_function="relu", enable_bias=True,
                    layer_norm_elementwise_affine=True, dropout=0.1, attention_dropout=0.0,
                    activation_dropout=0.0, layerdrop=0.0, init_std=0.02,
                    tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS,
                    eos_token_id=EOS),
        lr=2e-3),
    "tiny-llama": dict(
        arch="llama", dtype="bfloat16",
        config=dict(vocab_size=VOCAB, hidden_size=256, intermediate_size=512,
                    num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=2,
                    hidden_act="silu", max_position_embeddings=CTX, rope_theta=10000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=False,
                    mlp_bias=False, attention_dropout=0.1, initializer_range=0.02,
                    pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS),
        lr=2e-3),
}

TRAIN = dict(batch_size=32, warmup_steps=60, min_lr_ratio=0.1, weight_decay=0.1,
             betas=(0.9, 0.95), eps=1e-8, grad_clip=1.0, evals_per_epoch=2, patience=6,
             min_delta=1e-3, epochs_a=24, epochs_b_factor=1.3, epochs_longer_factor=5 / 3,
             eval_batch=64)


def log(*a):
    print(*a, flush=True)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if os.path.isfile(os.path.join(d, f)))


# ----------------------------------------------------------------------------- tokenizer

def train_tokenizer(text):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    assert [tok.token_to_id(s) for s in SPECIALS] == [PAD, BOS, EOS], "special ids"
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", BOS)])
    return tok


def save_tokenizer(tok, out_dir):
    """Saves through transformers, then writes a tokenizer_config.json that older transformers
    versions read too (PreTrainedTokenizerFast), and special_tokens_map.json."""
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>")
    hf.save_pretrained(out_dir)
    added = {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, s in enumerate(SPECIALS)}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
           "eos_token": "</s>", "pad_token": "<pad>", "add_bos_token": True,
           "add_eos_token": False, "model_max_length": CTX,
           "clean_up_tokenization_spaces": False, "added_tokens_decoder": added}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, f, indent=2)


def encode(tok, text):
    return np.asarray(tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)


# ----------------------------------------------------------------------------- data

def epoch_batches(ids, offset, batch_size, rng):
    n = (len(ids) - offset) // WIN
    chunks = ids[offset:offset + n * WIN].reshape(n, WIN)
    seqs = np.concatenate([np.full((n, 1), BOS, dtype=np.int64), chunks], axis=1)
    perm = rng.permutation(n)
    for i in range(0, n - batch_size + 1, batch_size):   # drop the last partial batch
        yield seqs[perm[i:i + batch_size]]


def windows(ids):
    """Non-overlapping windows of WIN tokens, each prefixed with BOS; the last may be short."""
    out = []
    for s in range(0, len(ids), WIN):
        out.append(np.concatenate([[BOS], ids[s:s + WIN]]).astype(np.int64))
    return out


@torch.no_grad()
def nll_sum(model, ids, device, batch=64, autocast=None):
    """Sum of -log p over every token of ids (BOS-prefixed windows), and the token count."""
    model.eval()
    ws = windows(ids)
    full = [w for w in ws if len(w) == CTX]
    rest = [w for w in ws if len(w) != CTX]
    total, count = 0.0, 0
    groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
    for g in groups:
        x = torch.from_numpy(np.stack(g)).to(device)
        with (autocast() if autocast else _null()):
            logits = model(input_ids=x).logits
        lp = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                             x[:, 1:].reshape(-1), reduction="sum")
        total += float(lp)
        count += x[:, 1:].numel()
    return total, count


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ----------------------------------------------------------------------------- models

def build_model(spec):
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM
    if spec["arch"] == "opt":
        return OPTForCausalLM(OPTConfig(**spec["config"]))
    return LlamaForCausalLM(LlamaConfig(**spec["config"]))


def n_params(model):
    # parameters() yields tied tensors once
    return sum(p.numel() for p in model.parameters())


def lr_at(step, peak, warmup, total, min_ratio):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def train_run(name, init_state, spec, train_ids, val_ids, max_epochs, deadline, device, seed,
              tr):
    """One training run from init_state; returns (best_state, record)."""
    seed_all(seed)
    model = build_model(spec).to(device)
    model.load_state_dict(init_state)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tr["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=spec["lr"], betas=tr["betas"], eps=tr["eps"],
                            fused=(device.type == "cuda"))
    steps_per_epoch = (len(train_ids) // WIN - 1) // tr["batch_size"]
    total = max_epochs * steps_per_epoch
    eval_every = max(1, steps_per_epoch // tr["evals_per_epoch"])
    rng = np.random.default_rng(seed)
    amp = ((lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
           if device.type == "cuda" else None)
    log(f"[train] {name}: run max_epochs={max_epochs} steps/epoch={steps_per_epoch} "
        f"total_steps={total} eval_every={eval_every} lr={spec['lr']}")
    best = dict(loss=float("inf"), step=0, state=None, train_loss=None)
    history = []
    step, since, bad, t0 = 0, [], 0, time.time()
    stop = "max_epochs"
    for epoch in range(max_epochs):
        offset = 0 if epoch == 0 else int(rng.integers(0, WIN))
        for batch in epoch_batches(train_ids, offset, tr["batch_size"], rng):
            lr = lr_at(step, spec["lr"], tr["warmup_steps"], total, tr["min_lr_ratio"])
            for g in opt.param_groups:
                g["lr"] = lr
            x = torch.from_numpy(batch).to(device, non_blocking=True)
            with (amp() if amp else _null()):
                logits = model(input_ids=x).logits
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   x[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr["grad_clip"])
            opt.step()
            since.append(loss.detach())
            step += 1
            if step % eval_every == 0 or step == total:
                tl = float(torch.stack(since).mean())
                since = []
                s, c = nll_sum(model, val_ids, device, tr["eval_batch"], amp)
                vl = s / c
                model.train()
                el = time.time() - t0
                history.append(dict(step=step, epoch=round(step / steps_per_epoch, 2),
                                    lr=lr, train_loss=round(tl, 4), val_loss=round(vl, 4),
                                    wall_s=round(el, 1)))
                mark = ""
                if vl < best["loss"] - tr["min_delta"]:
                    best.update(loss=vl, step=step, train_loss=tl,
                                state={k: v.detach().clone() for k, v in
                                       model.state_dict().items()})
                    bad, mark = 0, " *"
                else:
                    bad += 1
                log(f"[train] {name} step {step:5d} ep {step / steps_per_epoch:5.2f} "
                    f"lr {lr:.2e} train {tl:.4f} val {vl:.4f} ({math.exp(vl):7.2f}) "
                    f"{el:6.1f}s{mark}")
                if bad >= tr["patience"]:
                    stop = "early_stopping"
                    break
                if time.time() > deadline:
                    stop = "wall_clock"
                    break
        if stop != "max_epochs":
            break
    rec = dict(max_epochs=max_epochs, steps=step, steps_per_epoch=steps_per_epoch,
               total_steps_planned=total, stopped=stop, best_step=best["step"],
               best_epoch=round(best["step"] / steps_per_epoch, 2),
               best_val_loss=round(best["loss"], 5),
               train_loss_at_best=round(best["train_loss"], 5),
               final_train_loss=history[-1]["train_loss"], final_val_loss=history[-1]["val_loss"],
               wall_s=round(time.time() - t0, 1), history=history)
    log(f"[train] {name}: run done ({stop}) after {step} steps, best val {best['loss']:.4f} "
        f"at step {best['step']} (epoch {rec['best_epoch']}), {rec['wall_s']}s")
    del model, opt
    return best["state"], rec


def train_model(name, spec, train_ids, val_ids, device, seed, budget_s, tr):
    seed_all(seed)
    model = build_model(spec)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    log(f"[model] {name}: {type(model).__name__} {n_params(model):,} parameters; "
        f"config {json.dumps(spec['config'])}")
    del model
    t0 = time.time()
    runs = []
    state_a, rec_a = train_run(name, init_state, spec, train_ids, val_ids, tr["epochs_a"],
                               t0 + 0.6 * budget_s, device, seed, tr)
    rec_a["name"] = "A"
    runs.append((state_a, rec_a))
    epochs_b = None
    if rec_a["stopped"] == "early_stopping":
        # stopped early: anneal by the epoch where A's validation loss bottomed out
        epochs_b = max(3, int(math.ceil(rec_a["best_step"] / rec_a["steps_per_epoch"]
                                        * tr["epochs_b_factor"])))
        if epochs_b >= tr["epochs_a"]:
            epochs_b = None
    elif rec_a["stopped"] == "max_epochs" and rec_a["best_step"] >= 0.9 * rec_a["steps"]:
        # still improving when the schedule ended: try a longer schedule
        epochs_b = int(round(tr["epochs_a"] * tr["epochs_longer_factor"]))
    if epochs_b is not None:
        if time.time() < t0 + budget_s - 10:
            state_b, rec_b = train_run(name, init_state, spec, train_ids, val_ids, epochs_b,
                                       t0 + budget_s, device, seed, tr)
            rec_b["name"] = "B"
            runs.append((state_b, rec_b))
    state, rec = min(runs, key=lambda r: r[1]["best_val_loss"])
    log(f"[train] {name}: keeping run {rec['name']} (best val loss {rec['best_val_loss']:.4f}); "
        f"training took {time.time() - t0:.1f}s")
    model = build_model(spec)
    model.load_state_dict({k: v.cpu() for k, v in state.items()})
    return model, rec, [r[1] for r in runs]


def save_model(name, model, spec, tok, out_dir):
    import shutil
    from transformers import GenerationConfig
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    dtype = getattr(torch, spec["dtype"])
    model = model.to(dtype)
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS,
                                               pad_token_id=PAD)
    model.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    save_tokenizer(tok, out_dir)
    keep = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json"}
    for f in sorted(os.listdir(out_dir)):
        if f not in keep:
            p = os.path.join(out_dir, f)
            log(f"[save] {name}: removing extra {f}")
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    missing = keep - set(os.listdir(out_dir))
    assert not missing, f"{name}: missing {missing}"
    size = dir_bytes(out_dir)
    log(f"[save] {name}: {out_dir} {size:,} bytes "
        + ", ".join(f"{f}={os.path.getsize(os.path.join(out_dir, f)):,}"
                    for f in sorted(os.listdir(out_dir))))
    assert size + SIZE_ALLOWANCE <= MAX_DIR_BYTES, f"{name}: {size} bytes is over budget"
    return size


# ----------------------------------------------------------------------------- evaluation

def load_fp32(model_dir, device):
    from transformers import AutoModelForCausalLM
    try:
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    return m.float().to(device).eval()


def unigram_ppl(train_ids, ids):
    counts = np.bincount(train_ids, minlength=VOCAB).astype(np.float64)
    logp = np.log((counts + 1.0) / (counts.sum() + VOCAB))
    return float(math.exp(-logp[ids].mean()))


@torch.no_grad()
def seq_logprobs(model, ids, device):
    """log p(ids[i] | ids[:i]) for i >= 1, float32, on one unpadded sequence."""
    x = torch.tensor([ids], device=device)
    logits = model(input_ids=x).logits[0, :-1].float()
    return torch.log_softmax(logits, -1).gather(1, x[0, 1:, None])[:, 0]


def mc_eval(model, tok_hf, path, device, limit=None):
    items = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    if limit:
        items = items[:limit]
    correct = correct_norm = fallbacks = truncated = 0
    for it in items:
        ctx = tok_hf(it["context"])["input_ids"]
        lls = []
        for ch in it["choices"]:
            whole = tok_hf(it["context"] + ch)["input_ids"]
            if whole[:len(ctx)] == ctx and len(whole) > len(ctx):
                cont = whole[len(ctx):]
            else:
                fallbacks += 1
                cont = tok_hf(ch, add_special_tokens=False)["input_ids"]
            c = ctx
            if len(c) + len(cont) > CTX:   # keep the end of the context (lm-eval truncates left)
                truncated += 1
                c = [BOS] + c[len(c) + len(cont) - CTX + 1:]
            lp = seq_logprobs(model, c + cont, device)
            lls.append(float(lp[len(c) - 1:].sum()))
        pred = int(np.argmax(lls))
        pred_norm = int(np.argmax([ll / len(ch) for ll, ch in zip(lls, it["choices"])]))
        correct += pred == it["label"]
        correct_norm += pred_norm == it["label"]
    n = len(items)
    return dict(acc=round(correct / n, 4), acc_norm=round(correct_norm / n, 4), n=n,
                chance=0.25, acc_stderr=round(math.sqrt(correct / n * (1 - correct / n) / n), 4),
                boundary_fallbacks=fallbacks, truncated=truncated)


@torch.no_grad()
def passages_ppl(model, tok_hf, path, device):
    total, count = 0.0, 0
    for l in open(path, encoding="utf-8"):
        if not l.strip():
            continue
        ids = tok_hf(json.loads(l)["text"])["input_ids"][:CTX]
        lp = seq_logprobs(model, ids, device)
        total -= float(lp.sum())
        count += len(ids) - 1
    return dict(ppl=round(math.exp(total / count), 3), tokens=count)


def evaluate(name, model_dir, data, device, quick):
    from transformers import AutoTokenizer
    model = load_fp32(model_dir, device)
    tok_hf = AutoTokenizer.from_pretrained(model_dir)
    # the reloaded tokenizer must agree with the one the data was encoded with
    sample = read(os.path.join(CORPUS, "test.txt"))[:2000]
    assert tok_hf(sample, add_special_tokens=False)["input_ids"] == \
        data["tok"].encode(sample, add_special_tokens=False).ids, "tokenizer round trip"
    assert tok_hf("Hello")["input_ids"][0] == BOS
    res = {}
    for split in ("validation", "test"):
        ids = data[split]
        s, c = nll_sum(model, ids, device, 16)
        res[split] = dict(ppl=round(math.exp(s / c), 3), nll=round(s / c, 5), tokens=c,
                          unigram_ppl=round(unigram_ppl(data["train"], ids), 2))
        log(f"[eval] {name} {split}: ppl {math.exp(s / c):.3f} over {c} tokens "
            f"(unigram baseline {res[split]['unigram_ppl']:.2f})")
    sub = data["train"][:len(data["validation"])]
    s, c = nll_sum(model, sub, device, 16)
    res["train_subset"] = dict(ppl=round(math.exp(s / c), 3), tokens=c,
                               note="first tokens of train.txt, as many as validation has")
    log(f"[eval] {name} train subset: ppl {math.exp(s / c):.3f} over {c} tokens")
    res["passages"] = passages_ppl(model, tok_hf, os.path.join(EVAL_DIR, "perplexity.jsonl"),
                                   device)
    log(f"[eval] {name} perplexity.jsonl passages: {res['passages']}")
    t0 = time.time()
    res["mc_cloze"] = mc_eval(model, tok_hf, os.path.join(EVAL_DIR, "mc_cloze.jsonl"), device,
                              limit=20 if quick else None)
    log(f"[eval] {name} mc_cloze: {res['mc_cloze']} ({time.time() - t0:.1f}s)")
    return res


# ----------------------------------------------------------------------------- goldens

def golden_positions(prompt_len, total_len):
    pos = set(range(max(0, prompt_len - 3), prompt_len))
    pos.update(range(prompt_len, total_len, 4))
    pos.add(total_len - 1)
    return sorted(pos)


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-per-model", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--models", default="tiny-opt,tiny-llama")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--no-golden", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-root", default=os.path.join(REPO, "datasets", "models"))
    ap.add_argument("--golden-root", default=GOLDEN_ROOT)
    ap.add_argument("--quick", action="store_true", help="dry run: tiny data, tiny budgets")
    args = ap.parse_args()
    t_start = time.time()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import tokenizers
    import transformers
    tr = dict(TRAIN)
    if args.quick:
        tr.update(batch_size=4, warmup_steps=5, epochs_a=3, patience=2, eval_batch=8)
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu"
    env = dict(device=str(device), gpu=gpu, torch=torch.__version__,
               transformers=transformers.__version__, tokenizers=tokenizers.__version__,
               python=platform.python_version(),
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    log(f"[env] {json.dumps(env)}")
    log(f"[settings] seed={args.seed} time_per_model={args.time_per_model}s ctx={CTX} "
        f"vocab={VOCAB} train={json.dumps(tr)}")
    names = args.models.split(",")
    for n in names:
        log(f"[settings] {n}: {json.dumps(MODELS[n])}")

    seed_all(args.seed)
    texts = {s: read(os.path.join(CORPUS, f"{s}.txt")) for s in ("train", "validation", "test")}
    t0 = time.time()
    if args.eval_only:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.out_root, names[0], "tokenizer.json"))
        log("[tokenizer] loaded from " + args.out_root)
    else:
        tok = train_tokenizer(texts["train"])
        log(f"[tokenizer] trained in {time.time() - t0:.1f}s, vocab {tok.get_vocab_size()}")
    if args.quick:
        texts = {k: v[:60_000] for k, v in texts.items()}
    data = {s: encode(tok, t) for s, t in texts.items()}
    data["tok"] = tok
    for s in ("train", "validation", "test"):
        log(f"[data] {s}: {len(texts[s]):,} chars -> {len(data[s]):,} tokens "
            f"({len(texts[s]) / len(data[s]):.2f} chars/token)")
    log(f"[tokenizer] 'It is a truth universally acknowledged' -> "
        f"{tok.encode('It is a truth universally acknowledged').ids}")

    for name in names:
        spec = MODELS[name]
        out_dir = os.path.join(args.out_root, name)
        train_info, runs = None, None
        if not args.eval_only:
            model, train_info, runs = train_model(name, spec, data["train"], data["validation"],
                                                  device, args.seed, args.time_per_model, tr)
            size = save_model(name, model, spec, tok, out_dir)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        torch.manual_seed(args.seed)
        res = evaluate(name, out_dir, data, device, args.quick)
        m = load_fp32(out_dir, "cpu")
        cfg = spec["config"]
        arch = dict(model_class=type(m).__name__, layers=cfg["num_hidden_layers"],
                    heads=cfg["num_attention_heads"],
                    kv_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
                    hidden=cfg["hidden_size"],
                    ffn=cfg.get("ffn_dim", cfg.get("intermediate_size")), vocab=VOCAB,
                    context=CTX, params=n_params(m), dtype_on_disk=spec["dtype"],
                    size_on_disk_bytes=dir_bytes(out_dir),
                    safetensors_bytes=os.path.getsize(os.path.join(out_dir,
                                                                   "model.safetensors")))
        del m
        results_path = os.path.join(out_dir, "eval_results.json")
        old = {}
        if args.eval_only and os.path.exists(results_path):
            old = json.load(open(results_path))
        out = dict(model=name, architecture=arch, env=env,
                   eval=res, seed=args.seed,
                   training=old.get("training") if args.eval_only else dict(
                       settings=dict(tr, lr_peak=spec["lr"], optimizer="AdamW",
                                     schedule="linear warmup, cosine to min_lr_ratio*peak",
                                     autocast="bfloat16", seq_len=CTX,
                                     time_per_model_s=args.time_per_model,
                                     model_config=cfg,
                                     data="train.txt as one string, 511-token chunks + BOS, "
                                          "random start offset per epoch"),
                       chosen_run=train_info["name"], best_step=train_info["best_step"],
                       best_epoch=train_info["best_epoch"],
                       best_val_loss=train_info["best_val_loss"],
                       train_loss_at_best=train_info["train_loss_at_best"],
                       final_train_loss=train_info["final_train_loss"],
                       final_val_loss=train_info["final_val_loss"],
                       runs=runs),
                   tokenizer=dict(type="byte-level BPE (tokenizers.models.BPE)", vocab=VOCAB,
                                  specials={"<pad>": PAD, "<s>": BOS, "</s>": EOS},
                                  trained_on="datasets/corpus/train.txt", min_frequency=2,
                                  post_processor="TemplateProcessing: <s> $A"),
                   command="PYTHONUNBUFFERED=1 python3 datasets/tools/train_tiny_models.py")
        with open(results_path, "w") as f:
            json.dump(out, f, indent=1)
        log(f"[result] {name}: {json.dumps({k: v for k, v in out.items() if k != 'training'})}")
        if out.get("training"):
            t = {k: v for k, v in out["training"].items() if k not in ("runs", "settings")}
            log(f"[result] {name} training: {json.dumps(t)}")
        assert dir_bytes(out_dir) <= MAX_DIR_BYTES
        if not args.no_golden:
            t0 = time.time()
            write_golden(out_dir, out_dir=os.path.join(args.golden_root, name),
                         prompts=GOLDEN_PROMPTS, name=name,
                         model_ref=f"datasets/models/{name}", n_greedy=32,
                         positions_fn=golden_positions, dtype_on_disk=spec["dtype"])
            gdir = os.path.join(args.golden_root, name)
            log(f"[golden] {name}: {dir_bytes(gdir):,} bytes in {gdir} ({time.time() - t0:.1f}s)")
            from transformers import AutoTokenizer
            tk = AutoTokenizer.from_pretrained(out_dir)
            g = json.load(open(os.path.join(gdir, "golden.json")))
            for c in g["cases"]:
                log(f"[golden] {name} {c['name']}: {c['text'][:40]!r}... -> "
                    f"{tk.decode(c['greedy_ids'])!r}")

    script = os.path.join(REPO, "datasets", "prompts", "to_parquet.py")
    if os.path.exists(script) and not args.quick:
        r = subprocess.run([sys.executable, script], capture_output=True, text=True)
        log(f"[parquet] rc={r.returncode} {r.stdout.strip()} {r.stderr.strip()[-500:]}")
    log(f"[done] total {time.time() - t_start:.1f}s")


if __name__ == "__main__":
    main()
