#!/usr/bin/env python3
"""Build datasets/prompts/prompts.jsonl: generation prompts of varied length.

Standard library only; deterministic (fixed seed): re-running produces a
byte-identical file.

Source: the held-out novels only, datasets/corpus/validation.txt (Northanger
Abbey) and datasets/corpus/test.txt (Persuasion), never train.txt. Only the
novels' body text is used: from the first chapter heading on, chapter
headings, "(End of volume one.)", "Finis" and the Signet edition's closing
"A NOTE ON THE TEXT" (not Austen's) excluded. No prompt crosses a chapter.

Each prompt is a verbatim slice of the corpus (its hard line breaks and
blank lines between paragraphs kept, nothing normalised) that starts at the
start of a sentence (a paragraph start, or a word after ". ", "! ", "? ",
optionally with closing quotes, that begins with a capital letter or an
opening quote; not after "Mr.", "Mrs.", "Dr.", "St.", other abbreviations
or a capital initial) and ends after its last whole word, so it has no leading or
trailing whitespace. Word = maximal run of non-whitespace characters.

Lengths: N_PROMPTS word counts, stratified log-uniform between MIN_WORDS and
MAX_WORDS (one seeded draw in each of N_PROMPTS equal slices of
[ln MIN_WORDS, ln MAX_WORDS]), so short, medium and long prompts are all
well represented. The source novel is drawn in proportion to its word
count, the start uniformly among the sentence starts that leave room for the
whole prompt. Prompts never overlap each other. Ids p-0001... are given in a
seeded random order, so lengths are mixed along the file.

Usage
    python3 datasets/prompts/build_prompts.py [--out datasets/prompts/prompts.jsonl]
"""

import argparse
import bisect
import json
import math
import os
import random
import re
import sys

SEED = 1817          # Northanger Abbey's and Persuasion's publication year
N_PROMPTS = 300
MIN_WORDS, MAX_WORDS = 3, 250
SOURCES = ("validation.txt", "test.txt")

CHAPTER_RE = re.compile(r"^\s*chapter\s+[0-9ivxlc]+\.?\s*$", re.IGNORECASE)
HEADING_RE = re.compile(
    r"^\s*(?:(?:chapter|volume|book)\s+[0-9ivxlc]+\.?"
    r"|\(end of volume [a-z ]+\.?\)"
    r"|finis|the end)\s*$",
    re.IGNORECASE)
STOP_RE = re.compile(r"^\s*a note on the text\s*$", re.IGNORECASE)
SENTENCE_START_RE = re.compile(r"(\S*)([.!?])[\"')\]]*\s+(?=[\"'(]*[A-Z])")
# a full stop after these (or after a capital initial other than "I") does
# not end a sentence
ABBREVIATIONS = {"Mr", "Mrs", "Messrs", "Dr", "St", "Esq", "Wm", "Capt",
                 "Col", "Lt", "Gen", "Adm", "Rev", "Hon", "No", "Vol"}


def chapter_segments(text):
    """Yield (start, end) of each chapter's body (headings excluded)."""
    seg_start = seg_end = None
    started = False
    for m in re.finditer(r"(?:[^\n]*\S[^\n]*(?:\n|$))+", text):
        raw = m.group(0).rstrip("\n")
        if STOP_RE.match(raw):
            break
        if CHAPTER_RE.match(raw):
            started = True
        if HEADING_RE.match(raw):
            if seg_start is not None:
                yield seg_start, seg_end
            seg_start = None
            continue
        if not started:
            continue
        if seg_start is None:
            seg_start = m.start()
        seg_end = m.start() + len(raw)
    if seg_start is not None:
        yield seg_start, seg_end


def index_source(text):
    """Words of the body as (start, end) offsets, grouped per chapter, and
    for each chapter the indices of words that start a sentence."""
    chapters = []
    for s, e in chapter_segments(text):
        words = [(m.start() + s, m.end() + s)
                 for m in re.finditer(r"\S+", text[s:e])]
        starts = {0}
        for m in SENTENCE_START_RE.finditer(text, s, e):
            word = m.group(1).lstrip("\"'([")
            if m.group(2) == "." and (word in ABBREVIATIONS
                                      or re.fullmatch(r"[A-HJ-Z]", word)):
                continue
            starts.add(m.end())
        # paragraph starts: a word preceded by a blank line
        para = {m.end() for m in re.finditer(r"\n[ \t]*\n\s*", text[s:e])}
        first = [i for i, (ws, _) in enumerate(words)
                 if i == 0 or ws in starts or ws - s in para]
        chapters.append((words, first))
    return chapters


def build(corpus_dir):
    rng = random.Random(SEED)
    texts, sources = {}, []
    for name in SOURCES:
        with open(os.path.join(corpus_dir, name), encoding="utf-8") as f:
            texts[name] = f.read()
        chapters = index_source(texts[name])
        sources.append((name, chapters, sum(len(w) for w, _ in chapters)))

    lo, hi = math.log(MIN_WORDS), math.log(MAX_WORDS)
    lengths = []
    for i in range(N_PROMPTS):
        x = lo + (i + rng.random()) * (hi - lo) / N_PROMPTS
        lengths.append(min(MAX_WORDS, max(MIN_WORDS, round(math.exp(x)))))
    # Longest first, so the long ones still find room among the taken spans.
    lengths.sort(reverse=True)

    taken = {name: [] for name in SOURCES}    # sorted (start, end) offsets
    weights = [n_words for _, _, n_words in sources]
    prompts = []
    for n in lengths:
        for _attempt in range(1000):
            name, chapters, _ = rng.choices(sources, weights=weights)[0]
            ci = rng.randrange(len(chapters))
            words, first = chapters[ci]
            ok = [i for i in first if i + n <= len(words)]
            if not ok:
                continue
            i = rng.choice(ok)
            start, end = words[i][0], words[i + n - 1][1]
            spans = taken[name]
            k = bisect.bisect_left(spans, (start, end))
            if k > 0 and spans[k - 1][1] > start:
                continue
            if k < len(spans) and spans[k][0] < end:
                continue
            spans.insert(k, (start, end))
            prompts.append((name, texts[name][start:end]))
            break
        else:
            raise RuntimeError("no room for a %d-word prompt" % n)
    rng.shuffle(prompts)
    per_source = {name: sum(1 for n, _ in prompts if n == name) for name in SOURCES}
    rows = [{"id": "p-%04d" % k, "prompt": p} for k, (_, p) in enumerate(prompts, 1)]
    return rows, per_source


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus-dir",
                    default=os.path.normpath(os.path.join(here, "..", "corpus")))
    ap.add_argument("--out", default=os.path.join(here, "prompts.jsonl"))
    args = ap.parse_args(argv)

    rows, per_source = build(args.corpus_dir)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    counts = sorted(len(r["prompt"].split()) for r in rows)
    q = lambda p: counts[min(len(counts) - 1, int(p * len(counts)))]
    print("%s: %d prompts; words min %d, p25 %d, median %d, p75 %d, max %d; "
          "<=10 words: %d, 11-60: %d, >60: %d; %d chars in all"
          % (args.out, len(rows), counts[0], q(.25), q(.5), q(.75), counts[-1],
             sum(c <= 10 for c in counts),
             sum(10 < c <= 60 for c in counts),
             sum(c > 60 for c in counts),
             sum(len(r["prompt"]) for r in rows)))
    print("from " + ", ".join("%s: %d" % kv for kv in per_source.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
