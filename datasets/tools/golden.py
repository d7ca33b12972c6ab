"""Golden files from Hugging Face transformers: the independent oracle for the Java decoders.

Used by make_golden_checkpoints.py (random-initialised checkpoints, issue 2) and by
train_tiny_models.py (the bundled trained models, issue 3). Runs on any machine with PyTorch and
transformers; everything is computed on the CPU in float32, so results do not depend on TF32 or
GPU kernels.

Format written into OUT_DIR (read by the Java GoldenTest):
  golden.json
    model            name of the checkpoint
    model_dir        where the checkpoint lives, relative to the repository root ("." = OUT_DIR)
    torch, transformers   versions that produced it
    dtype_on_disk    dtype of the saved weights (the golden is computed after upcasting them)
    cases[]          one per prompt:
      name           tensor name in golden_logits.safetensors
      text           the prompt
      input_ids      tokenizer(text).input_ids (special tokens as the checkpoint's tokenizer adds)
      greedy_ids     n_greedy tokens from argmax decoding with the KV cache (EOS not special)
      positions      indices into input_ids + greedy_ids whose logits are stored
  golden_logits.safetensors
    <name>           float32 [len(positions), vocab]: logits of a teacher-forced full forward
                     over input_ids + greedy_ids, at the listed positions
"""
import json
import os

import torch
from safetensors.torch import save_file


def load_fp32(model_dir):
    """Loads a saved checkpoint on the CPU in float32, whatever dtype it was saved in."""
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    return model.float().cpu()


@torch.no_grad()
def greedy(model, input_ids, n):
    """n argmax steps through the model's KV cache (its incremental decode path)."""
    out = model(input_ids=torch.tensor([input_ids]), use_cache=True)
    past = out.past_key_values
    nxt = int(out.logits[0, -1].argmax())
    ids = [nxt]
    for _ in range(n - 1):
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        ids.append(nxt)
    return ids


def write_golden(model_dir, out_dir, prompts, name, model_ref=".", n_greedy=32,
                 positions_fn=None, dtype_on_disk="float32"):
    """Writes golden.json and golden_logits.safetensors for the checkpoint in model_dir.

    positions_fn(prompt_len, total_len) -> list of positions to store; default: all of them.
    """
    import transformers
    from transformers import AutoTokenizer
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    model = load_fp32(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    os.makedirs(out_dir, exist_ok=True)
    cases, tensors = [], {}
    for i, text in enumerate(prompts):
        input_ids = tok(text)["input_ids"]
        gen = greedy(model, input_ids, n_greedy)
        seq = input_ids + gen
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0].float()
        positions = (positions_fn(len(input_ids), len(seq)) if positions_fn
                     else list(range(len(seq))))
        key = f"case{i}"
        tensors[key] = logits[positions].contiguous()
        cases.append({"name": key, "text": text, "input_ids": input_ids,
                      "greedy_ids": gen, "positions": positions})
        print(f"[golden] {name} {key}: {len(input_ids)} prompt tokens, greedy {gen[:8]}...")
    save_file(tensors, os.path.join(out_dir, "golden_logits.safetensors"))
    meta = {"model": name, "model_dir": model_ref, "torch": torch.__version__,
            "transformers": transformers.__version__, "dtype_on_disk": dtype_on_disk,
            "n_greedy": n_greedy, "cases": cases}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
