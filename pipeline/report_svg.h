// pipeline/report_svg.h — the inline SVG plots and HTML escaping of `bipo-pipeline report`
// (pipeline/report.c): a line plot (one polyline per series, NaN points skipped) and a grouped
// bar chart, each with axis ticks, axis labels, a title and a legend, written straight into the
// page. No JavaScript, no external files: the page renders the same offline.
//
// Every plot's data area is filled with its own near-white colour rgb(247, 249, 255 - k) (never a grey an edge blends to) for
// plot number k (0..47, see bipo_svg_plot.k), invisible to a reader but exact in a screenshot,
// so a test finds each plot's area by that colour and checks that data was drawn inside it.
#ifndef BIPO_REPORT_SVG_H
#define BIPO_REPORT_SVG_H
#include <stddef.h>
#include <stdio.h>

#define BIPO_SVG_MAX_PLOTS 48 // distinct plot-area colours
#define BIPO_SVG_W 370        // every plot's size in CSS pixels (fixed: the page lays out a grid)
#define BIPO_SVG_H 260

typedef struct {
    const char *name;  // legend text (escaped when written)
    const char *color; // "#1f77b4"
    const double *x;   // [n] line plots; unused by bars
    const double *y;   // [n] (bars: one value per category)
    size_t n;
    int dashed;
} bipo_svg_series;

typedef struct {
    const char *id;              // the <svg id="...">
    const char *title, *xlabel, *ylabel;
    int k;                       // plot number (area colour), 0 .. BIPO_SVG_MAX_PLOTS-1
    int integer_x;               // x ticks at whole numbers only (layers)
    int unit_y;                  // a probability: the y axis stays within [0, 1]
} bipo_svg_plot;

// Writes s (the text of a library string) with & < > " ' escaped.
void bipo_html_puts(FILE *f, const char *s);
// The method colours (bipo, caa, caa_norm_matched, prompt, ...); other names cycle a palette.
const char *bipo_svg_color(const char *name, size_t i);

// A line plot of n series; x and y ranges from the finite data (padded, "nice" ticks).
void bipo_svg_lines(FILE *f, const bipo_svg_plot *p, const bipo_svg_series *s, size_t n);
// A grouped bar chart: ncat categories (x labels), one bar per series in each (s[i].y[ncat]);
// the y axis starts at 0 (scores, rates).
void bipo_svg_bars(FILE *f, const bipo_svg_plot *p, const char *const *cats, size_t ncat,
                   const bipo_svg_series *s, size_t n);

#endif
