#!/usr/bin/env python3
"""Extract Jane Austen's six novels from the Debian package r-cran-janeaustenr.

Standard library only (Python >= 3.8). Re-runnable and deterministic.

Source
    Debian package ``r-cran-janeaustenr`` (1.0.0-1 in bookworm), i.e. the CRAN
    package ``janeaustenr`` by Julia Silge (MIT); the novels themselves are in
    the public domain. The texts live in the R lazy-load database
    ``usr/lib/R/site-library/janeaustenr/data/Rdata.rdb`` with its index
    ``Rdata.rdx``.

Format handled
    ``Rdata.rdx`` is an R serialization (gzip-compressed, as written by
    ``saveRDS``; the other lazy-load framings are accepted too) of a list
    ``list(variables=, references=, compressed=)``: ``variables`` maps every
    object name to an integer pair (byte offset, byte length) inside
    ``Rdata.rdb``. Each record there is a 4-byte big-endian *uncompressed*
    length followed by a zlib stream (``compressed`` 2/3 = bzip2/xz with an
    extra type byte are handled as well) holding an XDR serialization (format
    "X", version 2 or 3) of a character vector, one string per line of the
    novel. The small deserializer below handles STRSXP, CHARSXP (NA strings,
    UTF-8 / Latin-1 / ASCII / bytes encodings), attributes, pairlists, symbols
    with the reference table, integer/logical/real/generic vectors and the
    special singleton environments: everything that occurs in these files.

Output (fixed split, fixed book order)
    train.txt       Emma, Mansfield Park, Pride and Prejudice,
                    Sense and Sensibility (in this order)
    validation.txt  Northanger Abbey
    test.txt        Persuasion
    Each novel is its lines joined with "\\n" (trailing whitespace stripped per
    line, an NA string written as an empty line, nothing else changed); novels
    within one file are separated by one blank line; every file ends in "\\n".
    UTF-8, no BOM.

Checksums
    The outputs are verified against ``SHA256SUMS`` (sha256sum format) next to
    them *before* anything is written; on mismatch nothing is overwritten and
    the script exits with status 1. ``--write-checksums`` (re)creates the file
    from the freshly extracted texts. ``--check`` only verifies the files
    already on disk (no download), like ``sha256sum -c``.

Usage
    python3 datasets/corpus/extract_austen.py                 # apt-get download
    python3 datasets/corpus/extract_austen.py --deb r-cran-janeaustenr_1.0.0-1_all.deb
    python3 datasets/corpus/extract_austen.py --rdb /path/to/janeaustenr/data/Rdata.rdb
    python3 datasets/corpus/extract_austen.py --write-checksums
    python3 datasets/corpus/extract_austen.py --check
"""

import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import struct
import subprocess
import sys
import tempfile
import zlib

PACKAGE = "r-cran-janeaustenr"
RDB_PATH_IN_DEB = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"

# R object name -> title, and the fixed split (order inside each file matters).
TITLES = {
    "emma": "Emma",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
}
SPLIT = [
    ("train.txt", ["emma", "mansfieldpark", "prideprejudice", "sensesensibility"]),
    ("validation.txt", ["northangerabbey"]),
    ("test.txt", ["persuasion"]),
]
CHECKSUM_FILE = "SHA256SUMS"


# --------------------------------------------------------------------------
# Minimal R XDR ("X" format) deserializer
# --------------------------------------------------------------------------

class RError(Exception):
    pass


class RNull:
    """R NULL (and the special singletons we never need to tell apart)."""

    def __init__(self, what="NULL"):
        self.what = what

    def __repr__(self):
        return self.what


NULL = RNull()


class RSymbol(str):
    pass


class RVector(list):
    """An R vector (atomic or generic) with its R type and attributes."""

    def __init__(self, sexptype, items=(), attributes=None):
        super().__init__(items)
        self.sexptype = sexptype
        self.attributes = attributes or {}

    @property
    def names(self):
        return self.attributes.get("names")


class RPairlist(list):
    """Pairlist as a list of (tag or None, value); attributes kept aside."""

    def __init__(self, items=(), attributes=None):
        super().__init__(items)
        self.attributes = attributes or {}


# SEXP type codes (Rinternals.h) and serialization pseudo-types (serialize.c)
NILSXP, SYMSXP, LISTSXP = 0, 1, 2
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP = 9, 10, 13, 14, 15, 16
VECSXP, EXPRSXP, RAWSXP = 19, 20, 24
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP = 255, 254, 253, 252
MISSINGARG_SXP, BASENAMESPACE_SXP, BASEENV_SXP, EMPTYENV_SXP = 251, 247, 241, 242
ALTREP_SXP = 238
SPECIALS = {
    NILVALUE_SXP: NULL,
    GLOBALENV_SXP: RNull("<GlobalEnv>"),
    UNBOUNDVALUE_SXP: RNull("<unbound>"),
    MISSINGARG_SXP: RNull("<missing>"),
    BASENAMESPACE_SXP: RNull("<namespace:base>"),
    BASEENV_SXP: RNull("<baseenv>"),
    EMPTYENV_SXP: RNull("<emptyenv>"),
}
IS_OBJECT_BIT, HAS_ATTR_BIT, HAS_TAG_BIT = 1 << 8, 1 << 9, 1 << 10
# CHARSXP encoding bits, found in the "levels" part of the flags
BYTES_MASK, LATIN1_MASK, UTF8_MASK, ASCII_MASK = 1 << 1, 1 << 2, 1 << 3, 1 << 6
NA_INTEGER = -(2 ** 31)


class XdrReader:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.refs = []
        self.native_encoding = "UTF-8"

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise RError("truncated R serialization at byte %d" % self.pos)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) | (lo & 0xFFFFFFFF)
        return n

    def read_header(self):
        fmt = self._take(2)
        if fmt != b"X\n":
            raise RError("not an XDR R serialization (format bytes %r)" % fmt)
        version = self.int()
        self.int()  # R version that wrote it
        self.int()  # minimal R version to read it
        if version == 3:
            n = self.int()
            self.native_encoding = self._take(n).decode("ascii")
        elif version != 2:
            raise RError("unsupported serialization version %d" % version)

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & HAS_ATTR_BIT)
        has_tag = bool(flags & HAS_TAG_BIT)

        if t in SPECIALS:
            return SPECIALS[t]
        if t == REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == SYMSXP:
            sym = RSymbol(self.item())  # a CHARSXP
            self.refs.append(sym)
            return sym
        if t == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self._take(n)
            if levels & LATIN1_MASK:
                return raw.decode("latin-1")
            if levels & BYTES_MASK:
                return raw.decode("utf-8", errors="surrogateescape")
            return raw.decode("utf-8")  # UTF-8, ASCII or native (UTF-8 here)
        if t in (LISTSXP,):
            return self._pairlist(has_attr, has_tag)
        if t in (STRSXP, VECSXP, EXPRSXP):
            n = self.length()
            vec = RVector(t, [self.item() for _ in range(n)])
        elif t == INTSXP or t == LGLSXP:
            n = self.length()
            vals = struct.unpack(">%di" % n, self._take(4 * n))
            vec = RVector(t, [None if v == NA_INTEGER else v for v in vals])
        elif t == REALSXP:
            n = self.length()
            vec = RVector(t, struct.unpack(">%dd" % n, self._take(8 * n)))
        elif t == CPLXSXP:
            n = self.length()
            v = struct.unpack(">%dd" % (2 * n), self._take(16 * n))
            vec = RVector(t, [complex(v[2 * i], v[2 * i + 1]) for i in range(n)])
        elif t == RAWSXP:
            n = self.length()
            vec = RVector(t, self._take(n))
        elif t == ALTREP_SXP:
            raise RError("ALTREP objects are not supported by this reader")
        else:
            raise RError("unsupported SEXP type %d at byte %d" % (t, self.pos - 4))
        if has_attr:
            vec.attributes = self._attributes()
        return vec

    def _pairlist(self, has_attr, has_tag):
        # Iterative over the CDR chain: each cell is [attr] [tag] CAR CDR.
        items, attributes = [], {}
        while True:
            if has_attr:
                a = self._attributes()
                if not items:
                    attributes = a
            tag = self.item() if has_tag else None
            items.append((tag, self.item()))
            flags = self.int()
            t = flags & 0xFF
            if t == LISTSXP:
                has_attr = bool(flags & HAS_ATTR_BIT)
                has_tag = bool(flags & HAS_TAG_BIT)
                continue
            self.pos -= 4
            tail = self.item()
            if tail is not NULL:
                raise RError("dotted pairlist not supported")
            return RPairlist(items, attributes)

    def _attributes(self):
        pl = self.item()
        if not isinstance(pl, RPairlist):
            raise RError("attributes are not a pairlist")
        return {str(tag): value for tag, value in pl}


def unserialize(data):
    """Deserialize an R object; accepts raw, gzip, or lazy-load-framed data."""
    data = decompress_any(data)
    r = XdrReader(data)
    r.read_header()
    obj = r.item()
    if r.pos != len(data):
        raise RError("%d trailing bytes after R object" % (len(data) - r.pos))
    return obj


def decompress_any(data):
    if data[:2] == b"X\n":
        return data
    if data[:2] == b"\x1f\x8b":  # saveRDS(compress=TRUE)
        return gzip.decompress(data)
    return decompress_record(data)


def decompress_record(rec):
    """One lazy-load record: 4-byte BE uncompressed length + compressed body."""
    if len(rec) < 5:
        raise RError("record too short")
    outlen = struct.unpack(">I", rec[:4])[0]
    body = rec[4:]
    if body[:1] == b"Z":
        out = zlib.decompress(body[1:])
    elif body[:1] == b"2":
        out = bz2.decompress(body[1:])
    elif body[:1] == b"X":
        out = lzma.decompress(body[1:])
    elif body[:1] == b"0":
        out = body[1:]
    else:
        out = zlib.decompress(body)
    if len(out) != outlen:
        raise RError("record length %d != declared %d" % (len(out), outlen))
    return out


def named_list(vec):
    names = vec.names
    if names is None or len(names) != len(vec):
        raise RError("expected a named list")
    return dict(zip(names, vec))


def read_lazyload_db(rdb_path):
    """Return {object name: R object} from a .rdb/.rdx pair."""
    rdx_path = rdb_path[:-4] + ".rdx"
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    objects = {}
    if os.path.exists(rdx_path):
        with open(rdx_path, "rb") as f:
            index = named_list(unserialize(f.read()))
        variables = named_list(index["variables"])
        for name, (offset, length) in variables.items():
            objects[name] = unserialize(rdb[offset:offset + length])
    else:
        # No index: walk the records (each one is length-prefixed and zlib).
        # Names are then unknown; identify novels by their title line.
        pos = 0
        while pos < len(rdb):
            d = zlib.decompressobj()
            d.decompress(rdb[pos + 4:])
            end = len(rdb) - len(d.unused_data)
            obj = unserialize(rdb[pos:end])
            objects[identify_by_title(obj)] = obj
            pos = end
    return objects


def identify_by_title(lines):
    first = next((s for s in lines if s and s.strip()), "").strip().lower()
    for name, title in TITLES.items():
        if first.replace("&", "and") == title.lower():
            return name
    raise RError("cannot identify novel starting with %r" % first)


# --------------------------------------------------------------------------
# Obtaining the package
# --------------------------------------------------------------------------

def run(cmd, cwd=None):
    print("+ " + " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, cwd=cwd).returncode


def fetch_deb(workdir):
    rc = run(["apt-get", "download", PACKAGE], cwd=workdir)
    if rc != 0:
        print("apt-get download failed; running apt-get update and retrying",
              file=sys.stderr)
        run(["apt-get", "update"])
        rc = run(["apt-get", "download", PACKAGE], cwd=workdir)
    debs = sorted(f for f in os.listdir(workdir) if f.endswith(".deb"))
    if rc != 0 or not debs:
        sys.exit("error: could not download %s with apt-get (try --deb or --rdb)"
                 % PACKAGE)
    return os.path.join(workdir, debs[0])


def extract_deb(deb, workdir):
    dest = os.path.join(workdir, "x")
    if run(["dpkg-deb", "-x", deb, dest]) != 0:
        sys.exit("error: dpkg-deb -x %s failed" % deb)
    rdb = os.path.join(dest, RDB_PATH_IN_DEB)
    if not os.path.exists(rdb):
        sys.exit("error: %s not found inside %s" % (RDB_PATH_IN_DEB, deb))
    return rdb


# --------------------------------------------------------------------------
# Building the split, checksums
# --------------------------------------------------------------------------

def novel_text(name, obj):
    if not isinstance(obj, RVector) or obj.sexptype != STRSXP:
        raise RError("%s is not a character vector" % name)
    n_na = sum(1 for s in obj if s is None)
    if n_na:
        print("note: %s has %d NA lines (written as empty lines)" % (name, n_na),
              file=sys.stderr)
    return "\n".join((s or "").rstrip() for s in obj)


def build_outputs(objects):
    missing = [n for n in TITLES if n not in objects]
    if missing:
        raise RError("novels missing from Rdata.rdb: %s" % ", ".join(missing))
    out = {}
    for fname, names in SPLIT:
        out[fname] = ("\n\n".join(novel_text(n, objects[n]) for n in names)
                      + "\n").encode("utf-8")
    return out


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_checksums(path):
    sums = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                digest, name = line.split(None, 1)
                sums[name.lstrip("*")] = digest
    return sums


def verify(outputs, sums_path):
    """Return a list of error strings (empty when all match)."""
    if not os.path.exists(sums_path):
        return ["%s does not exist (create it with --write-checksums)" % sums_path]
    sums = read_checksums(sums_path)
    errors = []
    for fname, data in outputs.items():
        want = sums.get(fname)
        got = sha256(data)
        if want is None:
            errors.append("%s: no checksum listed in %s" % (fname, sums_path))
        elif want != got:
            errors.append("%s: SHA-256 mismatch: expected %s, got %s"
                          % (fname, want, got))
    return errors


def report(outputs):
    for fname, data in outputs.items():
        text = data.decode("utf-8")
        print("%-15s %9d chars %9d bytes %7d lines  sha256 %s"
              % (fname, len(text), len(data), text.count("\n"), sha256(data)))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--deb", help="use this already-downloaded .deb")
    src.add_argument("--rdb", help="use this extracted Rdata.rdb "
                     "(Rdata.rdx next to it is used as the index if present)")
    ap.add_argument("--out-dir", default=here,
                    help="where the .txt files and SHA256SUMS live "
                    "(default: the script's directory)")
    ap.add_argument("--write-checksums", action="store_true",
                    help="(re)create SHA256SUMS from the extracted texts "
                    "instead of verifying against it")
    ap.add_argument("--check", action="store_true",
                    help="only verify the files already in --out-dir")
    args = ap.parse_args(argv)
    sums_path = os.path.join(args.out_dir, CHECKSUM_FILE)

    if args.check:
        outputs = {}
        for fname, _ in SPLIT:
            with open(os.path.join(args.out_dir, fname), "rb") as f:
                outputs[fname] = f.read()
        report(outputs)
        errors = verify(outputs, sums_path)
        for e in errors:
            print("error: " + e, file=sys.stderr)
        print("checksums: %s" % ("MISMATCH" if errors else "OK"))
        return 1 if errors else 0

    with tempfile.TemporaryDirectory(prefix="janeaustenr.") as tmp:
        if args.rdb:
            rdb = args.rdb
        else:
            deb = os.path.abspath(args.deb) if args.deb else fetch_deb(tmp)
            rdb = extract_deb(deb, tmp)
        objects = read_lazyload_db(rdb)
    for name in TITLES:
        if name in objects:
            print("read %-17s %6d lines" % (name, len(objects[name])),
                  file=sys.stderr)
    outputs = build_outputs(objects)
    report(outputs)

    if not args.write_checksums:
        errors = verify(outputs, sums_path)
        if errors:
            for e in errors:
                print("error: " + e, file=sys.stderr)
            print("error: checksum verification failed; nothing was written. "
                  "If the change is intended, rerun with --write-checksums.",
                  file=sys.stderr)
            return 1
    os.makedirs(args.out_dir, exist_ok=True)
    for fname, data in outputs.items():
        with open(os.path.join(args.out_dir, fname), "wb") as f:
            f.write(data)
    if args.write_checksums:
        with open(sums_path, "w", encoding="utf-8", newline="\n") as f:
            for fname, _ in SPLIT:
                f.write("%s  %s\n" % (sha256(outputs[fname]), fname))
        print("wrote %s" % sums_path)
    else:
        print("checksums: OK")
    print("wrote %s" % ", ".join(os.path.join(args.out_dir, f) for f, _ in SPLIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
