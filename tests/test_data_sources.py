"""The readers of `microgpt data prepare` (microgpt/data/sources.py, parquet.py): every format gives
back exactly the documents written, parts of a file give exactly its documents, stream segments join
back to the text with every cut a safe one, and every bad input is one line naming file and line."""

import gzip
import hashlib
import itertools
import json
import os
import random
import sys

import pytest

from microgpt.data import parquet, readers
from microgpt.data.sources import SEGMENT_CHARS, expand_sources, plan_parts, read_part, source_format, source_info
from microgpt.errors import MicroGPTError
from microgpt.tokenizers.pattern import split

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zstd = pytest.importorskip("zstandard")

WORDS = ["the", "cat", "sat", "2024", "café", "naïve", "Ünïcödé", "中文字符", "日本語", "😀🚀", "עברית",
         "العربية", "a\tb", "it's", "x!", "“quoted”", "ﬁne", "\u200bzw"]
FINEWEB = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]


def _doc(rng, n=None):
    """A document without newlines or surrounding white space (lines mode gives it back as it is)."""
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(1, 30)))


def _write(path, raw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(raw)
    return str(path)


def write_sample_corpus(folder, seed):
    """A corpus of every format; returns {path: the documents a reader must give, in order}.
    Also hidden files and a .csv that folders must skip (not in the result)."""
    rng, out = random.Random(seed), {}
    docs = [_doc(rng) for _ in range(200)]
    lines = "".join(rng.choice(["", " ", "\t"]) + d + rng.choice(["", "  "]) + "\n" + "\n" * (i % 7 == 0)
                    for i, d in enumerate(docs))
    raw = b"\xef\xbb\xbf" + lines.encode()
    out[_write(f"{folder}/text/a.txt", raw)] = docs
    out[_write(f"{folder}/text/zipped/a.txt.gz", gzip.compress(raw))] = docs
    two_frames = b"".join(zstd.ZstdCompressor().compress(h) for h in (raw[:len(raw) // 2], raw[len(raw) // 2:]))
    out[_write(f"{folder}/text/zipped/a.txt.zst", two_frames)] = docs
    out[_write(f"{folder}/text/empty.txt", b"")] = out[_write(f"{folder}/text/blank.md", b" \r\n\n\t")] = []
    crlf = [_doc(rng) for _ in range(30)]
    out[_write(f"{folder}/text/nested/deep/crlf.md", "\r\n".join(crlf).encode())] = crlf
    huge = [_doc(rng, 5), " ".join([_doc(rng, 3000)] * 150), _doc(rng, 5)]  # (a 3 MB document)
    out[_write(f"{folder}/text/nested/huge.rst", "\n".join(huge).encode())] = huge
    _write(f"{folder}/text/.hidden.txt", b"hidden\n")
    _write(f"{folder}/text/.git/inside.txt", b"hidden\n")
    _write(f"{folder}/text/notes.csv", b"a,b\n")
    texts = [rng.choice(["", "  lead", "multi\nline\r\n", ""]) + _doc(rng) for _ in range(150)] + [""]
    jsonl = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=i % 2 == 0) + "\n" + " \n" * (i % 9 == 0)
                    for i, t in enumerate(texts)).encode()
    texts = [t for t in texts if t]
    out[_write(f"{folder}/json/c.jsonl", jsonl)] = texts
    out[_write(f"{folder}/json/c.ndjson.gz", gzip.compress(jsonl))] = texts
    out[_write(f"{folder}/json/c.jsonl.zst", zstd.ZstdCompressor().compress(jsonl))] = texts
    rows = [rng.choice([None, "", _doc(rng), _doc(rng) + "\n\n" + _doc(rng)]) for _ in range(60)]
    table = pa.table({"text": rows, "id": [f"<urn:uuid:{i}>" for i in range(60)], "dump": ["CC-MAIN-2024-10"] * 60,
                      "url": [f"https://example.com/{i}" for i in range(60)], "date": ["2024-02-20T10:00:00Z"] * 60,
                      "file_path": ["s3://commoncrawl/x.warc.gz"] * 60, "language": ["en"] * 60,
                      "language_score": [rng.random() for _ in range(60)],
                      "token_count": pa.array([rng.randint(1, 999) for _ in range(60)], pa.int64())})
    os.makedirs(f"{folder}/parquet", exist_ok=True)
    assert table.column_names == FINEWEB
    pq.write_table(table, f"{folder}/parquet/fineweb.parquet", row_group_size=8)
    out[f"{folder}/parquet/fineweb.parquet"] = [r for r in rows if r]
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return str(folder), write_sample_corpus(folder, seed=1)


def _read(path, mode="lines", part_bytes=64 << 20, field="text"):
    return [list(read_part(p, mode, field)) for p in plan_parts(path, mode, part_bytes)]


def test_every_format_gives_back_exactly_the_documents_written(corpus):
    _, files = corpus
    for path, docs in files.items():
        pieces = [p for part in _read(path) for p in part]
        assert [p.text for p in pieces] == docs, path
        assert all(p.ends_doc for p in pieces)


def test_the_parts_of_a_file_give_exactly_the_documents_in_them(corpus, monkeypatch):
    _, files = corpus
    monkeypatch.setattr(readers, "BLOCK", 97)  # (lines and cuts across the reads' boundaries)
    for path in (p for p in files if p.endswith((".txt", ".rst", ".jsonl", ".parquet")) and files[p]):
        parts = plan_parts(path, "lines", part_bytes=1000)
        assert len(parts) > 1, path
        if path.endswith(".parquet"):
            f = pq.ParquetFile(path)
            expect = [[t for g in range(p.start, p.end) for t in f.read_row_group(g).column("text").to_pylist() if t]
                      for p in parts]
        else:
            raw = open(path, "rb").read()
            bounds = [p.start for p in parts] + [len(raw)]
            assert all(s == 0 or raw[s - 1:s] == b"\n" for s in bounds[:-1])
            chunks = [raw[a:b].decode("utf-8-sig").split("\n") for a, b in zip(bounds, bounds[1:])]
            expect = ([[json.loads(x)["text"] for x in c if x.strip() and json.loads(x)["text"]] for c in chunks]
                      if path.endswith(".jsonl") else [[x.strip() for x in c if x.strip()] for c in chunks])
        got = [[p.text for p in read_part(part)] for part in parts]
        assert got == expect and list(itertools.chain(*got)) == files[path], path


def test_expand_sources_folders_globs_and_files(corpus, tmp_path):
    folder, files = corpus
    assert expand_sources([folder]) == sorted(files)
    jsonl = sorted(p for p in files if "/json/" in p)
    assert expand_sources([f"{folder}/**/c.*"]) == jsonl
    a = f"{folder}/text/a.txt"
    assert expand_sources([a, f"{folder}/json", a]) == [a] + jsonl  # (each once, first place kept)
    assert expand_sources([f"{folder}/text/.hidden.txt"]) == [f"{folder}/text/.hidden.txt"]  # named: read
    (tmp_path / "empty").mkdir()
    for source, words in [(f"{folder}/text/notes.csv", "unknown format"), (f"{folder}/nope", "does not exist"),
                          (str(tmp_path / "empty"), "no data files"), (f"{folder}/*.nope", "no data files")]:
        with pytest.raises(MicroGPTError, match=words) as e:
            expand_sources([source])
        assert source in str(e.value)


@pytest.mark.parametrize("name, fmt", [
    ("a.txt", ("text", None)), ("b.MD", ("text", None)), ("c.markdown.gz", ("text", "gz")),
    ("d.rst.zst", ("text", "zst")), ("e.ndjson", ("jsonl", None)), ("f.jsonl.gz", ("jsonl", "gz")),
    ("g.parquet", ("parquet", None)), ("h.text", ("text", None)), ("i.parquet.gz", None), ("j.json", None),
    ("k", None), ("l.txt.bz2", None)])
def test_source_format(name, fmt):
    if fmt:
        assert source_format(name) == fmt
    else:
        with pytest.raises(MicroGPTError, match=f"unknown format of {name}: give .txt/.md"):
            source_format(name)


def _stream_text(rng):
    """Lines starting with letters, digits, Unicode letters, spaces and symbols; CRLF; a long
    stretch with no cut; the split pattern's corner cases around line breaks."""
    starts = ["", "7", " ", "-", "é", "中", "'s ", "!", "\t"]
    lines = [rng.choice(starts) + _doc(rng) + rng.choice(["", "!", " ", "'"]) for _ in range(1500)]
    lines[500:700] = [" " + _doc(rng) for _ in range(200)]  # (~20 kB without a cut)
    return "\ufeff" + "".join(x + rng.choice(["\n", "\r\n", "\n\n", " \n"]) for x in lines) + "tail"


@pytest.mark.parametrize("part_bytes", [5000, 64 << 20])
def test_stream_segments_join_back_to_the_text_and_cut_only_where_bpe_cannot_tell(tmp_path, monkeypatch, part_bytes):
    monkeypatch.setattr(readers, "BLOCK", 97 if part_bytes == 5000 else readers.BLOCK)
    text = _stream_text(random.Random(part_bytes))
    path = _write(tmp_path / "s.txt", text.encode())
    parts = _read(path, "stream", part_bytes)
    assert (len(parts) > 5) == (part_bytes == 5000)
    segments = [p for part in parts for p in part]
    assert "".join(p.text for p in segments) == text[1:]  # (the BOM dropped)
    assert [p.ends_doc for p in segments] == [False] * (len(segments) - 1) + [True]
    for a, b in zip(segments, segments[1:]):
        assert a.text.endswith("\n") and b.text[0].isascii() and b.text[0].isalnum()
    assert all(len(p.text) >= SEGMENT_CHARS for part in parts for p in part[:-1])
    assert max(len(p.text) for p in segments) > 3 * SEGMENT_CHARS  # (the stretch without a cut)
    assert list(itertools.chain(*(split(p.text) for p in segments))) == split(text[1:])
    zipped = _write(tmp_path / "s.txt.zst", zstd.ZstdCompressor().compress(text.encode()))
    assert "".join(p.text for part in _read(zipped, "stream", part_bytes) for p in part) == text[1:]


def test_file_mode_one_document_per_file(tmp_path):
    a = _write(tmp_path / "a.md", "\ufeff# Title\r\n\nbody é 中\n".encode())
    b = _write(tmp_path / "b.txt.gz", gzip.compress(b"  second\n"))
    c = _write(tmp_path / "c.txt", b" \n\t\n")
    got = [[(p.text, p.ends_doc) for p in part] for path in (a, b, c) for part in _read(path, "file", 10)]
    assert got == [[("# Title\r\n\nbody é 中\n", True)], [("  second\n", True)], []]


def test_source_info(corpus):
    path = f"{corpus[0]}/text/nested/huge.rst"
    raw = open(path, "rb").read()
    assert source_info(path) == {"path": path, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def _parquet(path, **columns):
    pq.write_table(pa.table(columns), path, row_group_size=2)
    return str(path)


MANY = b"".join(b"line %d\n" % i for i in range(1, 400))
ZST = zstd.ZstdCompressor().compress(MANY)
BAD = [  # (file name, its bytes, text mode, what the one-line error must say)
    ("u.txt", b"ok\nfine\n\xff bad\n", "lines", "line 3: not UTF-8 (bad byte at offset 8): convert it to UTF-8"),
    ("late.txt", MANY + b"bad \xc3\x28\n" + MANY, "lines", f"line 400: not UTF-8 (bad byte at offset {len(MANY) + 4})"),
    ("late.txt.gz", gzip.compress(MANY + b"\xe2\x82\n"), "stream", "line 400: not UTF-8"),
    ("nul.md", b"a\nb\x00c\n", "file", "line 2: holds NUL bytes (a binary file?)"),
    ("bad.jsonl", b'{"text": "a"}\n\n{oops\n', "lines", "line 3: not JSON (Expecting property name"),
    ("int.jsonl", b"1\n", "lines", "line 1: a JSON number, not an object"),
    ("late.jsonl", b'{"text": "a"}\n' * 300 + b"[1, 2]\n", "lines", "line 301: a JSON array, not an object"),
    ("f.jsonl", b'{"id": 1, "content": "x"}\n', "lines", "line 1: no field 'text' (it has: id, content): "
                                                       "pass --text-field NAME"),
    ("n.jsonl", b'{"text": 5}\n', "lines", "line 1: field 'text' is a JSON number, not a string"),
    ("null.jsonl.gz", gzip.compress(b'{"text": "a"}\n{"text": null}\n'), "lines",
     "line 2: field 'text' is a JSON null, not a string"),
    ("s.jsonl", b'{"text": "a\\ud800"}\n', "lines", "line 1: field 'text' holds a lone surrogate"),
    ("t.txt.gz", gzip.compress(MANY)[:-30], "lines", "a corrupt or truncated gzip file"),
    ("g.jsonl.gz", b"plain text, not gzip\n", "lines", "a corrupt or truncated gzip file"),
    ("t.txt.zst", ZST[:len(ZST) // 2], "lines", "a truncated zstd file"),
    ("g.txt.zst", ZST + b"garbage after the frame", "lines", "a corrupt zstd file"),
    ("x.parquet", b"PAR1 not really", "lines", "not a readable Parquet file"),
]


@pytest.mark.parametrize("name, raw, mode, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_the_file_and_line(tmp_path, name, raw, mode, words):
    path = _write(tmp_path / name, raw)
    with pytest.raises(MicroGPTError) as e:
        _read(path, mode, part_bytes=100)
    assert str(e.value).startswith(path) and words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "json"])
def test_jsonl_that_only_json_takes_is_read_and_lone_surrogates_refused(tmp_path, monkeypatch, fast):
    """orjson parses first where installed; what it refuses and json takes gives json's object, checked."""
    if not fast:
        monkeypatch.setattr(readers, "strict_loads", None)
    elif readers.strict_loads is None:
        pytest.skip("orjson is not installed")
    good = _write(tmp_path / "a.jsonl", b'{"n": NaN, "text": "a"}\n{"n": 123456789012345678901234567890, '
                                        b'"text": "caf\\u00e9 \\ud83c\\udf89 \xc3\xa9"}\n')
    assert [p.text for part in _read(good) for p in part] == ["a", "café 🎉 é"]
    bad = _write(tmp_path / "b.jsonl", b'{"text": "caf\\u00e9"}\n{"text": "\\udc00x"}\n')
    with pytest.raises(MicroGPTError, match="line 2: field 'text' holds a lone surrogate"):
        _read(bad)


@pytest.mark.parametrize("part_bytes, batch_rows", [(1, 1024), (1 << 20, 1)])  # (rows counted both ways)
def test_bad_parquet_columns(tmp_path, monkeypatch, part_bytes, batch_rows):
    monkeypatch.setattr(parquet, "BATCH_ROWS", batch_rows)
    cases = [(_parquet(tmp_path / "a.parquet", id=[1, 2], content=["x", "y"]),
              "no column 'text' (it has: id, content): pass --text-field NAME"),
             (_parquet(tmp_path / "b.parquet", text=[1, 2]), "column 'text' holds int64, not strings"),
             (_parquet(tmp_path / "c.parquet", text=pa.Array.from_buffers(pa.string(), 5, pa.array(
                 [b"a", b"b", b"c", b"\xffd", b"e"], pa.binary()).buffers())), "row 4: column 'text' is not UTF-8")]
    for path, words in cases:
        with pytest.raises(MicroGPTError) as e:
            _read(path, part_bytes=part_bytes)
        assert str(e.value).startswith(path) and words in str(e.value)
    assert [p.text for part in _read(cases[0][0], field="content") for p in part] == ["x", "y"]


def test_unreadable_file_and_missing_extra(tmp_path, monkeypatch):
    folder = tmp_path / "d.txt"
    folder.mkdir()
    with pytest.raises(MicroGPTError, match=f"cannot read {folder} "):
        _read(str(folder), "file")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    path = _write(tmp_path / "a.txt.zst", ZST)
    with pytest.raises(MicroGPTError, match=r"reading this data needs zstandard: pip install '\.\[data\]'"):
        _read(path)
