"""TensorBoard event files, written by hand: no tensorflow, tensorboard or protobuf needed.

An event file is a sequence of records (the TFRecord framing):
    uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes
    payload (length bytes)        | uint32 masked CRC-32C of the payload
and each payload is one protocol-buffer message `Event`, of which we write only the fields
    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; Image image = 4; }
    Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
The first event of a file says `file_version: "brain.Event:2"`. TensorBoard reads every file
whose name holds "tfevents" in the folder it is pointed at.

Writing costs a few microseconds per scalar: records go to a buffered file, and flush() hands
them to the OS without fsync, so a training loop can call it at every log line.
"""

import os
import socket
import struct
import time

from microgpt.errors import MicroGPTError

# --- CRC-32C (Castagnoli), the checksum TFRecord uses; table-driven, one byte at a time ---------

def _crc_table(poly=0x82F63B78):  # the Castagnoli polynomial, bit-reversed
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    """TFRecord stores CRCs rotated and offset ("masked"): a CRC of data that holds CRCs is then
    not trivially zero."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(payload):
    """One TFRecord: length, its CRC, the payload, its CRC."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


# --- the few protocol-buffer encodings the Event message needs -----------------------------------

def _varint(n):
    n &= 0xFFFFFFFFFFFFFFFF  # int64: negative numbers as their two's complement, 10 bytes
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field, wire_type):  # wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit
    return _varint(field << 3 | wire_type)


def _bytes_field(field, raw):
    return _key(field, 2) + _varint(len(raw)) + raw


def _float32(value):
    value = float(value)
    try:
        return struct.pack("<f", value)
    except OverflowError:  # beyond float32: as TensorBoard would show it
        return struct.pack("<f", float("inf") if value > 0 else float("-inf"))


def scalar_value(tag, value):
    """Summary.Value {tag, simple_value}."""
    return _bytes_field(1, tag.encode("utf-8")) + _key(2, 5) + _float32(value)


def image_value(tag, png):
    """Summary.Value {tag, image: Image{height, width, colorspace, encoded PNG}}."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("add_image takes the bytes of a PNG file")
    width, height = struct.unpack(">II", png[16:24])   # the IHDR chunk comes first
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(png[25], 4)  # PNG colour type -> channels
    image = (_key(1, 0) + _varint(height) + _key(2, 0) + _varint(width) + _key(3, 0) + _varint(channels)
             + _bytes_field(4, png))
    return _bytes_field(1, tag.encode("utf-8")) + _bytes_field(4, image)


def event(wall_time, step=None, file_version=None, values=()):
    """An Event message; `values` are encoded Summary.Value messages."""
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step is not None:
        out += _key(2, 0) + _varint(int(step))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode("utf-8"))
    if values:
        out += _bytes_field(5, b"".join(_bytes_field(1, v) for v in values))
    return out


# --- the writer ---------------------------------------------------------------------------------

class SummaryWriter:
    """Scalars (and PNG images) for TensorBoard, in a new event file in `logdir`:
        w = SummaryWriter("runs/x/tensorboard"); w.add_scalar("loss/train", 2.6, step=100); w.close()
    """

    _count = 0  # several writers in one process and one second still get distinct files

    def __init__(self, logdir, filename_suffix=""):
        os.makedirs(logdir, exist_ok=True)
        SummaryWriter._count += 1
        now = time.time()
        name = (f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{SummaryWriter._count}{filename_suffix}")
        self.logdir, self.path = logdir, os.path.join(logdir, name)
        self._file = open(self.path, "wb")  # noqa: SIM115 (open until close())
        self._file.write(record(event(now, file_version="brain.Event:2")))
        self.flush()

    def _write(self, values, step, wall_time):
        if self._file is None:
            raise MicroGPTError(f"the TensorBoard writer for {self.logdir} is closed")
        self._file.write(record(event(time.time() if wall_time is None else wall_time, step, values=values)))

    def add_scalar(self, tag, value, step, wall_time=None):
        self._write([scalar_value(tag, value)], step, wall_time)

    def add_scalars(self, scalars, step, wall_time=None):
        """Several {tag: value} of one step in one event."""
        if scalars:
            self._write([scalar_value(t, v) for t, v in scalars.items()], step, wall_time)

    def add_image(self, tag, png, step=0, wall_time=None):
        """A picture (the bytes of a PNG file) under IMAGES in TensorBoard."""
        self._write([image_value(tag, png)], step, wall_time)

    def flush(self):
        if self._file is not None:
            self._file.flush()  # to the OS, no fsync: cheap enough for every log line

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- a run's metrics as TensorBoard scalars -------------------------------------------------------

METRIC_TAGS = {  # metrics.jsonl key -> TensorBoard tag (the part before "/" groups the charts)
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "val_bpb": "bpb/val",
    "lr": "optim/lr",
    "tokens_per_s": "speed/tokens_per_s",
    "tokens": "progress/tokens",
    "reward_mean": "rl/reward_mean",
}


def metric_scalars(row):
    """{tag: value} of the numbers in one metrics.jsonl row (pass@k under rl/; unknown keys skipped)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        tag = METRIC_TAGS.get(key) or (f"rl/{key}" if key.startswith("pass@") else None)
        if tag:
            out[tag] = value
    return out


def log_metrics(writer, row, wall_time=None):
    """Write one metrics.jsonl row (as the training loop logs it) to `writer` at its step."""
    writer.add_scalars(metric_scalars(row), int(row["step"]), wall_time)


# --- reading back (for tests, and to check a file) ------------------------------------------------

def _fields(buf):
    """{field number: [values]} of one protobuf message: ints, 8-/4-byte raw, or bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def _read_varint(buf, i):
    n, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def read_events(path):
    """Every event of an event file, each a dict {wall_time, step, file_version?, scalars {tag: value},
    images {tag: (height, width, png)}}. Every length and payload CRC is checked."""
    with open(path, "rb") as f:
        raw = f.read()
    events, i = [], 0
    while i < len(raw):
        header = raw[i:i + 8]
        if len(header) < 8 or struct.unpack("<I", raw[i + 8:i + 12])[0] != masked_crc32c(header):
            raise MicroGPTError(f"{path}: bad record length CRC at byte {i}")
        (n,) = struct.unpack("<Q", header)
        payload = raw[i + 12:i + 12 + n]
        if len(payload) < n or struct.unpack("<I", raw[i + 12 + n:i + 16 + n])[0] != masked_crc32c(payload):
            raise MicroGPTError(f"{path}: bad record payload CRC at byte {i}")
        i += 16 + n
        f = _fields(payload)
        ev = {"wall_time": struct.unpack("<d", f[1][0])[0], "step": f.get(2, [0])[0], "scalars": {}, "images": {}}
        if ev["step"] >= 1 << 63:
            ev["step"] -= 1 << 64
        if 3 in f:
            ev["file_version"] = f[3][0].decode("utf-8")
        for summary in f.get(5, []):
            for v in _fields(summary).get(1, []):
                vf = _fields(v)
                tag = vf[1][0].decode("utf-8")
                if 2 in vf:
                    ev["scalars"][tag] = struct.unpack("<f", vf[2][0])[0]
                if 4 in vf:
                    img = _fields(vf[4][0])
                    ev["images"][tag] = (img[1][0], img[2][0], img[4][0])
        events.append(ev)
    return events
