"""tests/report_png.py HTML PNG WIDTH HEIGHT — checks a headless-Chromium screenshot of a
`bipo-pipeline report` page: the PNG (decoded here with zlib, no imaging library) has the window
size, and every plot of the page is on it, found by its own plot-area colour rgb(247,249,255-k)
(report_svg.h), at the size the HTML gives its area rect, and every series of the plot (each
polyline, each set of bars) left pixels of its colour inside the area, unless it runs within
3 px of a solid series drawn after it (then it is legitimately hidden). Prints one line per plot and
"report_png: N passed, M failed"; exits non-zero on a failure."""
import re
import struct
import sys
import zlib

import numpy as np

from pycheck import Checks  # tests/pycheck.py


def read_png(path):
    """RGB uint8 [H, W, 3] of an 8-bit RGB/RGBA non-interlaced PNG."""
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(d):
        n, kind = struct.unpack(">I4s", d[pos:pos + 8])
        body = d[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.int32)
    prev = np.zeros(w * bpp, np.int32)
    for y in range(h):  # undo the per-row filters (PNG spec 9.2)
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:  # 1 Sub, 3 Average, 4 Paeth: depend on the left neighbour, byte by byte
            cur = np.zeros_like(line)
            for i in range(len(line)):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (line[i] + pred) & 255
        out[y], prev = cur, cur
    return out.reshape(h, w, bpp)[:, :, :3]


def hex_rgb(s):
    return np.array([int(s[i:i + 2], 16) for i in (1, 3, 5)], np.int32)


def main():
    html, png, W, H = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    page = open(html, encoding="utf-8").read()
    img = read_png(png)
    check = Checks("report_png")

    check(img.shape == (H, W, 3), f"PNG is {img.shape[1]}x{img.shape[0]}, want {W}x{H}")
    white = (img == 255).all(2).mean()
    check(0.5 < white < 0.995, f"page background: {white:.3f} of the pixels white")
    svgs = re.findall(r'<svg id="([^"]+)".*?</svg>', page, re.S)
    bodies = re.findall(r'<svg id="[^"]+".*?</svg>', page, re.S)
    check(len(svgs) > 0, "no plots in the page")
    for pid, body in zip(svgs, bodies):
        m = re.search(r'class="area" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" fill="rgb\(247,249,(\d+)\)"', body)
        if not m:
            check(False, f"{pid}: no plot area rect")
            continue
        aw, ah, blue = int(m.group(3)), int(m.group(4)), int(m.group(5))
        mask = (img[:, :, 0] == 247) & (img[:, :, 1] == 249) & (img[:, :, 2] == blue)
        # the area is a filled rectangle: its rows and columns are partly that colour (lines, bars
        # cross it), while a stray blended pixel elsewhere is not
        ys, xs = np.nonzero(mask.sum(1) >= 0.1 * aw)[0], np.nonzero(mask.sum(0) >= 0.1 * ah)[0]
        if len(xs) == 0 or len(ys) == 0:
            check(False, f"{pid}: its area colour rgb(247,249,{blue}) is not on the screenshot")
            continue
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        # the 1px frame is drawn over the area's edge pixels: the fill spans width-1 .. width+1
        check(abs((x1 - x0 + 1) - aw) <= 2 and abs((y1 - y0 + 1) - ah) <= 2,
              f"{pid}: area on screen {x1 - x0 + 1}x{y1 - y0 + 1}, HTML says {aw}x{ah}")
        area = img[y0:y1 + 1, x0:x1 + 1]
        series = [(n, c, [tuple(map(float, q.split(","))) for q in pts.split()], "dasharray" in rest) for n, c, rest, pts in
                  re.findall(r'<polyline class="series" data-name="([^"]*)" fill="none" stroke="(#[0-9a-f]{6})"([^>]*)points="([^"]*)"', body)]
        bars = {}  # bar series: name -> colour, in drawing order
        for c, n in re.findall(r'<rect class="bar"[^>]*fill="(#[0-9a-f]{6})"><title>([^:<]*):', body):
            bars.setdefault(n, c)
        series += [(n, c, None, False) for n, c in bars.items()]
        check(len(series) > 0, f"{pid}: no series in the HTML")
        seen = {}
        for i, (name, c, pts, _) in enumerate(series):
            rgb = hex_rgb(c)
            check(np.abs(rgb - np.array([247, 249, blue])).max() > 60, f"{pid}/{name}: colour {c} invisible on the area")
            seen[name] = int((np.abs(area - rgb).max(2) <= 24).sum())
            # a line may hide under a later solid one that runs within 3 px of it everywhere
            hidden = pts is not None and any(
                q is not None and not dashed and len(q) == len(pts) and
                max(max(abs(a - b) for a, b in zip(u, v)) for u, v in zip(pts, q)) <= 3
                for _, _, q, dashed in series[i + 1:])
            check(seen[name] >= 15 or hidden, f"{pid}/{name}: {seen[name]} pixels of its colour {c} in the area")
        print(f"  {pid:28s} area {x1 - x0 + 1}x{y1 - y0 + 1} at ({x0},{y0}); series pixels {seen}")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
