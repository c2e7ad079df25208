// pipeline/report_svg.c — see report_svg.h. Inline SVG line and bar plots with ticks, labels
// and a legend below the axes; every library string goes through bipo_html_puts.
#include "report_svg.h"

#include <math.h>
#include <string.h>

void bipo_html_puts(FILE *f, const char *s) {
    for (; s && *s; s++) switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
}

const char *bipo_svg_color(const char *name, size_t i) {
    static const char *named[][2] = {{"bipo", "#1f77b4"}, {"caa", "#d62728"},
                                     {"caa_norm_matched", "#ff7f0e"}, {"prompt", "#2ca02c"},
                                     {"loss", "#1f77b4"}, {"heldout +1", "#9467bd"},
                                     {"heldout -1", "#8c564b"}};
    static const char *cycle[] = {"#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#9467bd", "#8c564b"};
    for (size_t k = 0; name && k < sizeof named / sizeof named[0]; k++)
        if (!strcmp(name, named[k][0])) return named[k][1];
    return cycle[i % (sizeof cycle / sizeof cycle[0])];
}

// ---- axes -------------------------------------------------------------------------------------
typedef struct {
    double lo, hi, step; // the axis range (tick multiples of step)
} axis;

// A range covering [lo, hi] in steps of 1, 2 or 5 x 10^k, about 5 ticks.
static axis nice_axis(double lo, double hi) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * (fabs(hi) + fabs(lo)) || hi == lo) lo -= 0.5, hi += 0.5;
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    return (axis){floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step};
}

static void range_of(const bipo_svg_series *s, size_t n, int want_x, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            double v = want_x ? s[i].x[k] : s[i].y[k];
            if (isfinite(v) && isfinite(s[i].y[k])) *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
}

typedef struct {
    double x0, y0, x1, y1; // the data area in SVG pixels (y0 top)
    axis ax, ay;
} frame;

static double px(const frame *fr, double x) { return fr->x0 + (x - fr->ax.lo) / (fr->ax.hi - fr->ax.lo) * (fr->x1 - fr->x0); }
static double py(const frame *fr, double y) { return fr->y1 - (y - fr->ay.lo) / (fr->ay.hi - fr->ay.lo) * (fr->y1 - fr->y0); }

static double text_w(const char *s) { return 6.2 * (double)strlen(s ? s : ""); } // 11px sans

// Legend rows below the x label: items flow left to right and wrap; returns the rows needed.
static int legend(FILE *f, const bipo_svg_series *s, size_t n, double y, int draw) {
    double x = 10;
    int rows = n ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        double w = 22 + text_w(s[i].name) + 12;
        if (x + w > BIPO_SVG_W - 4 && x > 10) x = 10, y += 15, rows++;
        if (draw) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>",
                    x, y - 4, x + 18, y - 4, s[i].color, s[i].dashed ? " stroke-dasharray=\"5 3\"" : "");
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 22, y);
            bipo_html_puts(f, s[i].name);
            fputs("</text>", f);
        }
        x += w;
    }
    return rows;
}

static void tick_label(FILE *f, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    fprintf(f, "%.*f", step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9), v);
}

// The <svg> opening, title, area fill, y ticks with grid lines, axis labels and legend; the
// data area is left in *fr. x ticks are the caller's (numbers or category labels).
static void open_plot(FILE *f, const bipo_svg_plot *p, const bipo_svg_series *s, size_t n, frame *fr) {
    int rows = legend(f, s, n, 0, 0);
    double bottom = 44 + 15.0 * rows;
    fr->x0 = 56, fr->x1 = BIPO_SVG_W - 12, fr->y0 = 30, fr->y1 = BIPO_SVG_H - bottom;
    fputs("<svg id=\"", f);
    bipo_html_puts(f, p->id);
    fprintf(f, "\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\">",
            BIPO_SVG_W, BIPO_SVG_H, BIPO_SVG_W, BIPO_SVG_H);
    // a long title (model / behavior / layer / run) is squeezed to the plot's width, not clipped
    double tw = 6.8 * (double)strlen(p->title ? p->title : ""), room = BIPO_SVG_W - 8;
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"16\" text-anchor=\"middle\"", BIPO_SVG_W / 2);
    if (tw > room) fprintf(f, " textLength=\"%.0f\" lengthAdjust=\"spacingAndGlyphs\"", room);
    fputs(">", f);
    bipo_html_puts(f, p->title);
    fputs("</text>", f);
    int k = p->k < 0 ? 0 : p->k % BIPO_SVG_MAX_PLOTS;
    fprintf(f, "<rect class=\"area\" x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
               "fill=\"rgb(247,249,%d)\" stroke=\"#999\" stroke-width=\"1\"/>",
            fr->x0, fr->y0, fr->x1 - fr->x0, fr->y1 - fr->y0, 255 - k);
    for (double v = fr->ay.lo; v <= fr->ay.hi + fr->ay.step * 1e-6; v += fr->ay.step) {
        double y = py(fr, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", fr->x0, y, fr->x1, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", fr->x0 - 5, y + 4);
        tick_label(f, v, fr->ay.step);
        fputs("</text>", f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (fr->x0 + fr->x1) / 2, fr->y1 + 32);
    bipo_html_puts(f, p->xlabel);
    fprintf(f, "</text><text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
            (fr->y0 + fr->y1) / 2, (fr->y0 + fr->y1) / 2);
    bipo_html_puts(f, p->ylabel);
    fputs("</text>", f);
    legend(f, s, n, fr->y1 + 50, 1);
}

static void x_tick(FILE *f, const frame *fr, double x, const char *label, double num, double step) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>", x, fr->y1, x, fr->y1 + 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, fr->y1 + 16);
    if (label) bipo_html_puts(f, label);
    else tick_label(f, num, step);
    fputs("</text>", f);
}

// ---- plots ------------------------------------------------------------------------------------
void bipo_svg_lines(FILE *f, const bipo_svg_plot *p, const bipo_svg_series *s, size_t n) {
    frame fr;
    double lo, hi;
    range_of(s, n, 1, &lo, &hi);
    fr.ax = nice_axis(lo, hi);
    if (isfinite(lo) && lo == hi) fr.ax = nice_axis(lo - 1, hi + 1);
    if (p->integer_x && fr.ax.step < 1) fr.ax = (axis){floor(fr.ax.lo), ceil(fr.ax.hi), 1};
    range_of(s, n, 0, &lo, &hi);
    double pad = isfinite(hi - lo) ? 0.05 * (hi - lo) : 0;
    fr.ay = nice_axis(lo - pad, hi + pad);
    if (p->unit_y && lo >= 0 && hi <= 1) fr.ay.lo = fmax(fr.ay.lo, 0), fr.ay.hi = fmin(fr.ay.hi, 1);
    open_plot(f, p, s, n, &fr);
    for (double v = fr.ax.lo; v <= fr.ax.hi + fr.ax.step * 1e-6; v += fr.ax.step)
        x_tick(f, &fr, px(&fr, v), NULL, v, fr.ax.step);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<polyline class=\"series\" data-name=\"");
        bipo_html_puts(f, s[i].name);
        fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s points=\"", s[i].color,
                s[i].dashed ? " stroke-dasharray=\"6 3\"" : "");
        for (size_t k = 0, first = 1; k < s[i].n; k++)
            if (isfinite(s[i].x[k]) && isfinite(s[i].y[k]))
                fprintf(f, "%s%.1f,%.1f", first ? "" : " ", px(&fr, s[i].x[k]), py(&fr, s[i].y[k])), first = 0;
        fputs("\"/>", f);
        if (s[i].n <= 24) // markers on short curves (A/B points, epochs)
            for (size_t k = 0; k < s[i].n; k++)
                if (isfinite(s[i].x[k]) && isfinite(s[i].y[k]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px(&fr, s[i].x[k]),
                            py(&fr, s[i].y[k]), s[i].color);
    }
    fputs("</svg>\n", f);
}

void bipo_svg_bars(FILE *f, const bipo_svg_plot *p, const char *const *cats, size_t ncat,
                   const bipo_svg_series *s, size_t n) {
    frame fr;
    double lo, hi;
    range_of(s, n, 0, &lo, &hi);
    fr.ax = (axis){0, (double)(ncat ? ncat : 1), 1};
    fr.ay = nice_axis(fmin(0, isfinite(lo) ? lo : 0), fmax(isfinite(hi) ? hi : 1, 1e-9));
    open_plot(f, p, s, n, &fr);
    double slot = (fr.x1 - fr.x0) / (double)(ncat ? ncat : 1), bw = 0.8 * slot / (double)(n ? n : 1);
    for (size_t c = 0; c < ncat; c++) {
        x_tick(f, &fr, fr.x0 + (c + 0.5) * slot, cats[c], 0, 1);
        for (size_t i = 0; i < n; i++) {
            double v = c < s[i].n ? s[i].y[c] : NAN;
            if (!isfinite(v)) continue;
            double y = py(&fr, v), y0 = py(&fr, 0);
            fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                    fr.x0 + c * slot + 0.1 * slot + i * bw, fmin(y, y0), bw, fabs(y0 - y), s[i].color);
            bipo_html_puts(f, s[i].name);
            fprintf(f, ": %.4g</title></rect>", v);
        }
    }
    fputs("</svg>\n", f);
}
