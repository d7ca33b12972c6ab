#!/usr/bin/env python3
"""Convert prompts.jsonl to prompts.parquet (columns id: string, prompt: string).

Needs pyarrow. Usage:
    python3 datasets/prompts/to_parquet.py [IN.jsonl [OUT.parquet]]
"""

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "prompts.jsonl")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "prompts.parquet")

with open(src, encoding="utf-8") as f:
    rows = [json.loads(line) for line in f if line.strip()]
schema = pa.schema([pa.field("id", pa.string(), nullable=False),
                    pa.field("prompt", pa.string(), nullable=False)])
table = pa.table({"id": [r["id"] for r in rows],
                  "prompt": [r["prompt"] for r in rows]}, schema=schema)
pq.write_table(table, dst)
print("wrote %s: %d rows" % (dst, pq.read_metadata(dst).num_rows))
