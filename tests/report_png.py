"""tests/report_png.py HTML PNG WIDTH HEIGHT — checks a headless-Chromium screenshot of a
`bipo-pipeline report` page: the PNG (decoded here with zlib, no imaging library) has the window
size, and every plot of the page is on it, found by its own plot-area colour rgb(247,249,255-k)
(report_svg.h), at the size the HTML gives its area rect, with pixels of its series colours
(lines, markers, bars) inside the area. Prints one line per plot and
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
        colors = sorted(set(re.findall(r'(?:stroke|fill)="(#[0-9a-f]{6})"', body)) - {"#999999", "#dddddd"})
        area = img[y0:y1 + 1, x0:x1 + 1]
        seen = {}
        for c in colors:
            seen[c] = int((np.abs(area - hex_rgb(c)).max(2) <= 24).sum())
        drawn = [c for c, n in seen.items() if n >= 15]
        # every series leaves pixels of its colour, except lines hidden under later ones:
        # at least two colours (one for a single-series plot) and 100 data pixels in all
        want = min(2, len(colors))
        check(len(drawn) >= want and sum(seen.values()) >= 100,
              f"{pid}: series colour pixels {seen}")
        print(f"  {pid:28s} area {x1 - x0 + 1}x{y1 - y0 + 1} at ({x0},{y0}); colour pixels {seen}")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
