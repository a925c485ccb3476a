"""End-to-end rembg timing for bgrm's benchmark: JPEG bytes in -> RGBA PNG bytes out, u2netp.

Usage: python rembg_bench.py THREADS FILE...   (U2NET_HOME must hold u2netp.onnx; nothing is downloaded)
Prints one JSON line: frames, seconds, framesPerSecond.
"""
import json
import sys
import time

import onnxruntime as ort
from rembg import new_session, remove

threads = int(sys.argv[1])
files = sys.argv[2:]
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
session = new_session("u2netp", sess_opts=opts)
data = [open(f, "rb").read() for f in files]
remove(data[0], session=session)  # warm-up, as bgrm's run has one
t0 = time.perf_counter()
for d in data:
    out = remove(d, session=session)
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
dt = time.perf_counter() - t0
print(json.dumps({"frames": len(data), "seconds": dt, "framesPerSecond": len(data) / dt}))
