"""Pillow baseline for bench/thumbnail.sh: the same work as the worker's thumbnail job.

Decode FILE, convert to RGB, resize to each size's box with LANCZOS (Lanczos3, as the worker),
encode JPEG quality 85; ROUNDS times; prints the median milliseconds as `median_ms=...`.
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
    edges = [int(part.split("=")[1]) for part in sizes.split(",")]
    with open(path, "rb") as f:
        data = f.read()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        image = Image.open(io.BytesIO(data)).convert("RGB")
        for edge in edges:
            resized = image.resize(fit(image.width, image.height, edge), Image.LANCZOS)
            resized.save(io.BytesIO(), "JPEG", quality=85)
        times.append((time.perf_counter() - started) * 1000)
    print(f"median_ms={statistics.median(times):.1f}")


main()
