#!/usr/bin/env python3
"""Build the held-out evaluation sets from datasets/corpus/test.txt (Persuasion).

Standard library only; deterministic (fixed seed, stable iteration order):
re-running produces byte-identical files.

Outputs (next to this script unless --out-dir is given)

perplexity.jsonl  {"id": "ppl-0001", "text": ...}
    Non-overlapping runs of consecutive whole paragraphs, 600-1500 characters,
    copied verbatim from test.txt (the corpus' hard line breaks inside a
    paragraph are kept, paragraphs are separated by "\\n\\n", exactly as in
    the file), never crossing a chapter heading and never containing
    headings or front/back matter. All such runs are tiled chapter by chapter
    (each run closes once it reaches a seeded random target length in
    [600, 1200]) and N_PPL of them are sampled, then listed in book order.

mc_cloze.jsonl    {"id": "mc-0001", "context": ..., "choices": [4 strings],
                   "label": 0..3}
    lm-eval style multiple-choice cloze. Paragraphs are unwrapped (every run
    of whitespace becomes one space) and split into sentences. The context
    is 1-4 consecutive sentences of one paragraph (150-600 chars); the true
    choice is the sentence that follows it in the same paragraph, prefixed by
    one space (so context + choice is the original text); the three
    distractors are other sentences of Persuasion lying at least MIN_DISTANCE
    characters away from the item, never the first sentence of a paragraph
    (as the gold never is), of similar length (within a factor 1.5 of the
    true sentence when possible, widened to 2 and then 3 otherwise) and
    chosen so that the gold's length rank among the four is uniform; also
    space-prefixed; all four are distinct. Continuations are 20-200
    chars. Items do not overlap each other. The gold position is uniform
    over 0..3 (a seeded shuffle of equally many 0s, 1s, 2s and 3s, so the
    positions are also exactly balanced). Items are listed in book order.

Usage
    python3 datasets/eval/build_eval.py [--corpus datasets/corpus/test.txt]
                                        [--out-dir datasets/eval]
"""

import argparse
import bisect
import json
import os
import random
import re
import sys

SEED = 1818          # Persuasion's publication year
N_PPL = 128
N_MC = 500
PPL_MIN, PPL_MAX = 600, 1500
PPL_TARGET = (600, 1200)
CTX_MIN, CTX_MAX, CTX_MAX_SENTS = 150, 600, 4
CONT_MIN, CONT_MAX = 20, 200
MIN_DISTANCE = 2000
LENGTH_FACTORS = (1.5, 2.0, 3.0)

HEADING_RE = re.compile(
    r"^\s*(?:(?:chapter|volume|book)\s+[0-9ivxlc]+\.?"
    r"|\(end of volume [a-z ]+\.?\)"
    r"|finis|the end)\s*$",
    re.IGNORECASE)
CHAPTER_RE = re.compile(r"^\s*chapter\s+[0-9ivxlc]+\.?\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------
# Paragraphs
# --------------------------------------------------------------------------

def paragraphs(text):
    """Yield (start, end, raw) for every paragraph (blank-line separated),
    offsets into text; raw is verbatim (internal newlines kept)."""
    for m in re.finditer(r"(?:[^\n]*\S[^\n]*(?:\n|$))+", text):
        raw = m.group(0).rstrip("\n")
        yield m.start(), m.start() + len(raw), raw


def body_chapters(text):
    """Body paragraphs grouped by chapter: a list of lists of (start, end, raw).
    Front matter before the first chapter heading and any heading or
    end-marker paragraph ("Chapter 3", "(End of volume one.)", "Finis") are
    dropped; a heading always closes the current group."""
    chapters, cur, started = [], None, False
    for start, end, raw in paragraphs(text):
        if CHAPTER_RE.match(raw):
            started = True
        if HEADING_RE.match(raw):
            if cur:
                chapters.append(cur)
            cur = []
            continue
        if started:
            cur.append((start, end, raw))
    if cur:
        chapters.append(cur)
    return chapters


# --------------------------------------------------------------------------
# Perplexity passages
# --------------------------------------------------------------------------

def tile_passages(text, chapters, rng):
    passages = []
    for chapter in chapters:
        run, target = [], rng.randint(*PPL_TARGET)
        for para in chapter:
            plen = para[1] - para[0]
            if plen > PPL_MAX:       # a single over-long paragraph: skip it
                run = []
                continue
            # keep the run a contiguous slice of the text that fits PPL_MAX
            while run and para[1] - run[0][0] > PPL_MAX:
                run.pop(0)
            run.append(para)
            if para[1] - run[0][0] >= max(target, PPL_MIN):
                passages.append((run[0][0], para[1]))
                run, target = [], rng.randint(*PPL_TARGET)
    return [(s, e, text[s:e]) for s, e in passages]


# --------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------

# Words that take a full stop without ending a sentence (the text mostly
# writes "Mr", "Mrs" without one, but not always).
ABBREVIATIONS = {
    "Mr", "Mrs", "Messrs", "Dr", "St", "Esq", "Wm", "Capt", "Col", "Lt",
    "Gen", "Adm", "Rev", "Hon", "Vol", "viz", "i.e", "e.g", "&c",
}
# ... and "No." only before a number ("No. 97"); a single capital letter other
# than the pronoun "I" is an initial ("F. W.").
SPEECH_VERBS = {
    "said", "cried", "replied", "asked", "exclaimed", "continued", "added",
    "answered", "returned", "observed", "whispered", "repeated", "rejoined",
}
BOUNDARY_RE = re.compile(r"([.!?]+)([\"')\]]*)(\s+)")
OPENERS = "\"'(["


def split_sentences(para):
    """Split one unwrapped paragraph into [(start, end)] sentence spans.

    A boundary is [.!?]+ plus optional closing quotes/brackets, then
    whitespace, then (after optional opening quotes) an upper-case letter or
    a digit. Not a boundary: a full stop after a known abbreviation (Mr.,
    Mrs., Dr., St., Esq., ...), after "No." before a number, or after a single
    capital initial other than "I" ("F. W.");
    '!'/'?' closing a quotation when the next words name the speaker
    ('"Is it?" Anne asked.')."""
    spans, start = [], 0
    for m in BOUNDARY_RE.finditer(para):
        punct, closers = m.group(1), m.group(2)
        nxt = para[m.end():].lstrip(OPENERS)
        if not nxt or not (nxt[0].isupper() or nxt[0].isdigit()):
            continue
        before = para[start:m.start(1)].split()
        word = before[-1].lstrip(OPENERS) if before else ""
        if punct == ".":
            if word in ABBREVIATIONS or re.fullmatch(r"[A-HJ-Z]", word):
                continue
            if word == "No" and nxt[0].isdigit():
                continue
        elif closers:
            words = re.findall(r"[A-Za-z]+", nxt)[:3]
            if any(w.lower() in SPEECH_VERBS for w in words):
                continue
        end = m.start(3)
        if end > start:
            spans.append((start, end))
        start = m.end()
    if start < len(para):
        spans.append((start, len(para)))
    return spans


def unwrap(raw):
    return " ".join(raw.split())


# --------------------------------------------------------------------------
# Multiple-choice cloze
# --------------------------------------------------------------------------

def build_sentence_index(chapters):
    """Return (paras, sentences): paras is a list of (doc_offset, text,
    [(s, e)]) in an unwrapped document where paragraphs are joined by
    "\\n\\n"; sentences is a list of (doc_start, doc_end, text, index of
    the sentence in its paragraph) over all paragraphs."""
    paras, sentences, off = [], [], 0
    for chapter in chapters:
        for _, _, raw in chapter:
            text = unwrap(raw)
            spans = split_sentences(text)
            paras.append((off, text, spans))
            for k, (s, e) in enumerate(spans):
                sentences.append((off + s, off + e, text[s:e], k))
            off += len(text) + 2
    return paras, sentences


def candidate_items(paras, rng):
    cands = []
    for off, text, spans in paras:
        for j in range(1, len(spans)):
            cs, ce = spans[j]
            if not CONT_MIN <= ce - cs <= CONT_MAX:
                continue
            ms = [m for m in range(1, min(CTX_MAX_SENTS, j) + 1)
                  if CTX_MIN <= spans[j - 1][1] - spans[j - m][0] <= CTX_MAX]
            if not ms:
                continue
            m = rng.choice(ms)
            ctx_start = spans[j - m][0]
            cands.append({
                "span": (off + ctx_start, off + ce),
                "context": text[ctx_start:spans[j - 1][1]],
                "gold": text[cs:ce],
                "sep": text[spans[j - 1][1]:cs],
            })
    return cands


def pick_distractors(item, sentences, want, rng):
    """Three distractor sentences for one item; returns (list, factor, ok).

    The pool holds only sentences that, like every gold continuation, are not
    the first of their paragraph (otherwise distractors would far more often
    open with a quotation mark than gold answers do), lie entirely at least
    MIN_DISTANCE characters outside the item, are 20-200 chars long and
    differ (case-insensitively) from the gold and from each other.

    To keep length from giving the answer away, the gold's length rank among
    the four choices is drawn uniformly (want = r, from a seeded shuffle of
    equally many 0s, 1s, 2s and 3s): r distractors shorter than the gold
    and 3 - r longer, all within a length factor of 1.5 (widened to 2, then
    3, when too few exist). Only if no factor allows rank r is another rank
    used (ok = False)."""
    lo, hi = item["span"]
    gold = item["gold"]
    glen = len(gold)
    pool = sorted({s[2] for s in sentences
                   if s[3] > 0
                   and (s[1] <= lo - MIN_DISTANCE or s[0] >= hi + MIN_DISTANCE)
                   and CONT_MIN <= len(s[2]) <= CONT_MAX})
    uniq, low = [], {gold.lower()}
    for c in pool:
        if c.lower() not in low:
            low.add(c.lower())
            uniq.append(c)
    ranks = [want] + [r for r in range(4) if r != want]
    for r in ranks:
        for factor in LENGTH_FACTORS:
            shorter = [c for c in uniq if glen / factor <= len(c) < glen]
            longer = [c for c in uniq if glen < len(c) <= glen * factor]
            if len(shorter) >= r and len(longer) >= 3 - r:
                picked = rng.sample(shorter, r) + rng.sample(longer, 3 - r)
                return picked, factor, r == want
    raise RuntimeError("not enough distractors for %r" % gold)


def build_mc(paras, sentences, rng):
    cands = candidate_items(paras, rng)
    order = list(range(len(cands)))
    rng.shuffle(order)
    taken, chosen = [], []
    for i in order:
        lo, hi = cands[i]["span"]
        k = bisect.bisect_left(taken, (lo, hi))
        if k > 0 and taken[k - 1][1] >= lo:
            continue
        if k < len(taken) and taken[k][0] <= hi:
            continue
        taken.insert(k, (lo, hi))
        chosen.append(cands[i])
        if len(chosen) == N_MC:
            break
    chosen.sort(key=lambda c: c["span"])
    items, widened, rank_fallback = [], 0, 0
    # Gold positions: a seeded shuffle of an (as nearly as possible) equal
    # number of 0s, 1s, 2s and 3s, so each item's label is uniform over 0..3
    # and no position is favoured overall.
    labels = [k % 4 for k in range(len(chosen))]
    rng.shuffle(labels)
    length_ranks = [k % 4 for k in range(len(chosen))]
    rng.shuffle(length_ranks)
    for n, c in enumerate(chosen, 1):
        assert c["sep"] == " ", c
        distractors, factor, ok = pick_distractors(c, sentences, length_ranks[n - 1], rng)
        widened += factor > LENGTH_FACTORS[0]
        rank_fallback += not ok
        label = labels[n - 1]
        choices = [" " + d for d in distractors]
        choices.insert(label, " " + c["gold"])
        items.append({"id": "mc-%04d" % n, "context": c["context"],
                      "choices": choices, "label": label})
    return items, len(cands), widened, rank_fallback


# --------------------------------------------------------------------------

def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_corpus = os.path.join(here, "..", "corpus", "test.txt")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=os.path.normpath(default_corpus))
    ap.add_argument("--out-dir", default=here)
    args = ap.parse_args(argv)

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    chapters = body_chapters(text)

    # Separate generators so that changing one set does not shift the other.
    ppl_rng = random.Random("%d/perplexity" % SEED)
    tiles = tile_passages(text, chapters, ppl_rng)
    picked = sorted(ppl_rng.sample(range(len(tiles)), min(N_PPL, len(tiles))))
    ppl = [{"id": "ppl-%04d" % n, "text": tiles[i][2]}
           for n, i in enumerate(picked, 1)]

    mc_rng = random.Random("%d/mc_cloze" % SEED)
    paras, sentences = build_sentence_index(chapters)
    mc, n_cands, widened, rank_fallback = build_mc(paras, sentences, mc_rng)

    os.makedirs(args.out_dir, exist_ok=True)
    write_jsonl(os.path.join(args.out_dir, "perplexity.jsonl"), ppl)
    write_jsonl(os.path.join(args.out_dir, "mc_cloze.jsonl"), mc)

    lens = sorted(len(p["text"]) for p in ppl)
    print("chapters %d, body paragraphs %d, sentences %d"
          % (len(chapters), sum(map(len, chapters)), len(sentences)))
    print("perplexity.jsonl: %d passages (of %d tiles), %d-%d chars, "
          "median %d, total %d chars"
          % (len(ppl), len(tiles), lens[0], lens[-1], lens[len(lens) // 2],
             sum(lens)))
    labels = [it["label"] for it in mc]
    print("mc_cloze.jsonl: %d items (of %d candidates), labels %s, "
          "%d items needed a length factor > %.1f, %d another length rank"
          % (len(mc), n_cands, [labels.count(k) for k in range(4)], widened,
             LENGTH_FACTORS[0], rank_fallback))
    return 0


if __name__ == "__main__":
    sys.exit(main())
