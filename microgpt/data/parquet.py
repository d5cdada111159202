"""Parquet sources (sources.py's third format): a string column, read with pyarrow one row group
at a time, in batches of rows, never the whole file; row groups are the unit a worker takes."""

from microgpt.data.readers import fail, optional_module

BATCH_ROWS = 1024  # rows turned into Python strings at a time


def _open(path):
    pa, pq = optional_module("pyarrow"), optional_module("pyarrow.parquet")
    try:
        return pa, pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise fail(path, f"not a readable Parquet file ({e}): check the file, or re-download it") from None


def plan_row_groups(path, part_bytes):
    """[(first, end)] ranges of row groups of about part_bytes (uncompressed, by the metadata)."""
    _, f = _open(path)
    ranges, start, size = [], 0, 0
    for i in range(f.metadata.num_row_groups):
        size += f.metadata.row_group(i).total_byte_size
        if size >= part_bytes:
            ranges.append((start, i + 1))
            start, size = i + 1, 0
    if start < f.metadata.num_row_groups or not ranges:
        ranges.append((start, f.metadata.num_row_groups))
    return ranges


def _is_text(pa, t):
    if pa.types.is_dictionary(t):
        t = t.value_type
    string_view = getattr(pa.types, "is_string_view", lambda _: False)  # (pyarrow >= 16)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or string_view(t)


def read_row_groups(part, field):
    """The non-empty strings of column `field` in row groups [part.start, part.end), in order (nulls
    skipped). Rows in errors count from 1, as lines do."""
    pa, f = _open(part.path)
    names = f.schema_arrow.names
    if field not in names:
        raise fail(part.path, f"no column {field!r} (it has: {', '.join(names[:20])}): pass --text-field NAME")
    column_type = f.schema_arrow.field(field).type
    if not _is_text(pa, column_type):
        raise fail(part.path, f"column {field!r} holds {column_type}, not strings: pass --text-field NAME "
                   f"of a text column")
    row = sum(f.metadata.row_group(i).num_rows for i in range(part.start))
    batches = f.iter_batches(BATCH_ROWS, row_groups=range(part.start, part.end), columns=[field])
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as e:
            raise fail(part.path, f"a corrupt Parquet file ({e}): check the file, or re-download it",
                       row=row + 1) from None
        if batch is None:
            return
        column = batch.column(0)
        try:
            values = column.to_pylist()
        except UnicodeDecodeError:
            bad = next(i for i in range(len(column)) if _undecodable(column[i]))
            raise fail(part.path, f"column {field!r} is not UTF-8: convert it to UTF-8", row=row + bad + 1) from None
        for v in values:
            if v:
                yield v
        row += len(column)


def _undecodable(scalar):
    try:
        scalar.as_py()
        return False
    except UnicodeDecodeError:
        return True
