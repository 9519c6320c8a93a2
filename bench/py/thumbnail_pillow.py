"""Pillow baseline for bench/thumbnail.sh: the same work as the worker's thumbnail job, on
Pillow's best path.

Pillow's best path is `Image.draft("RGB", size)` before loading: libjpeg then decodes at the
smallest DCT scale (1/8, 1/4, 1/2 or 1/1) whose result still covers `size` (here the largest
variant's width×height, so no variant is enlarged). draft() returns the original's box in the
scaled pixels, which resize() takes as `box=`, as `Image.thumbnail()` does. Then each size is
resized with LANCZOS (Lanczos3, as the worker) and encoded as JPEG quality 85; ROUNDS times.

Prints the median milliseconds as `median_ms=...` and the variants' sizes as
`sizes=NAME:WxH,...` (the script compares them with the worker's); with OUTDIR, writes the
variants there as NAME.jpg (the script compares the pictures too).
"""

import io
import statistics
import sys
import time

from PIL import Image


def fit(width, height, edge):
    longest = max(width, height)
    if longest <= edge:
        return width, height
    return (max(1, (width * edge + longest // 2) // longest),
            max(1, (height * edge + longest // 2) // longest))


def main():
    path, rounds, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    outdir = sys.argv[4] if len(sys.argv) > 4 else None
    named = [(part.split("=")[0], int(part.split("=")[1])) for part in sizes.split(",")]
    largest = max(edge for _, edge in named)
    with open(path, "rb") as f:
        data = f.read()
    times = []
    dimensions = ""
    for _ in range(rounds):
        started = time.perf_counter()
        image = Image.open(io.BytesIO(data))
        full = image.size
        drafted = image.draft("RGB", fit(*full, largest))
        box = drafted[1] if drafted else None
        if image.mode != "RGB":
            image = image.convert("RGB")
        out = []
        encoded = {}
        for name, edge in named:
            resized = image.resize(fit(*full, edge), Image.LANCZOS, box=box)
            encoded[name] = io.BytesIO()
            resized.save(encoded[name], "JPEG", quality=85)
            out.append(f"{name}:{resized.width}x{resized.height}")
        times.append((time.perf_counter() - started) * 1000)
        dimensions = ",".join(out)
    if outdir:
        for name, data in encoded.items():
            with open(f"{outdir}/{name}.jpg", "wb") as f:
                f.write(data.getvalue())
    print(f"median_ms={statistics.median(times):.1f}")
    print(f"sizes={dimensions}")


main()
