/*
 * model_spec.c -- the layer-list grammar and the model presets (issue 4).
 *
 *   list   := item { "," item }
 *   item   := [ N "*" ] ( layer | "res(" list [ "|" list ] ")" | "(" list ")" )
 *   layer  := "dense" N | "relu" | "conv" C [kK] [sS] [pP] [nobias] | "maxpool" K [sS] [pP]
 *           | "avgpool" K [sS] [pP] | "gap" | "bn" | "dropout" P | "flatten"
 *
 * res(body | shortcut) computes body(x) + shortcut(x); without "| shortcut"
 * the shortcut is the identity. "N*item" repeats an item N times. The full
 * description with examples is in docs/config.md.
 *
 * The parser emits a flat node list in execution order. Node i writes
 * activation i + 1 and reads activation `src` (0 = the input); the shapes
 * of all activations are tracked here so that a list that does not fit its
 * input is a config error naming the item, never a crash later.
 */
#include "layers-impl.h"

#include "alig/error.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPEAT 1000
#define MAX_DIM (1 << 24)           /* channels, units or pixels per side */
#define MAX_SAMPLE ((int64_t)1 << 30) /* values per sample in one activation */

typedef struct {
    alig_layer_t *nodes;
    int n;
    int (*shape)[3];  /* shape[a]: (c, h, w) of activation a; a = 0 is the input */
    int depth;        /* res/group nesting, bounded to keep the recursion shallow */
    int syntax_only;  /* alig_spec_check: no input shape, so no shape checks */
    int block_in;     /* the activation the res block being closed reads */
} parser_t;

static const char *kind_word_[] = {
    [ALIG_LAYER_DENSE] = "dense",     [ALIG_LAYER_RELU] = "relu",
    [ALIG_LAYER_CONV] = "conv",       [ALIG_LAYER_MAXPOOL] = "maxpool",
    [ALIG_LAYER_AVGPOOL] = "avgpool", [ALIG_LAYER_GAP] = "gap",
    [ALIG_LAYER_BN] = "bn",           [ALIG_LAYER_DROPOUT] = "dropout",
    [ALIG_LAYER_FLATTEN] = "flatten", [ALIG_LAYER_ADD] = "add",
};

static const char expected_[] =
    "expected one of: dense N, relu, conv C [kK] [sS] [pP] [nobias], maxpool K [sS] [pP], "
    "avgpool K [sS] [pP], gap, bn, dropout P, flatten, res(...), N*item";

/* ------------------------------------------------------------------------ */
/* one plain layer */

/* "k3" -> 3 when the token is <letter><digits>; -1 if it is not that letter. */
static long option_(const char *tok, char letter)
{
    if (tok[0] != letter || !isdigit((unsigned char)tok[1]))
        return -1;
    char *end;
    long v = strtol(tok + 1, &end, 10);
    return *end ? -2 : v;
}

static int parse_long_(const char *tok, long lo, long hi, long *out)
{
    if (!tok || !isdigit((unsigned char)tok[0]))
        return 0;
    char *end;
    long v = strtol(tok, &end, 10);
    if (*end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int bad_(int node, const char *item, const char *why)
{
    return alig_fail(ALIG_E_CONFIG, "[model] layers: item %d '%s': %s", node + 1, item, why);
}

/* Parse a plain layer `item` (trimmed, NUL-terminated) into *l. */
static int parse_layer_(const char *item, int node, alig_layer_t *l)
{
    char buf[256];
    if (strlen(item) >= sizeof buf)
        return bad_(node, item, "item too long");
    strcpy(buf, item);
    char *tok[8];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nt == 8)
            return bad_(node, item, "too many words");
        tok[nt++] = t;
    }
    memset(l, 0, sizeof *l);
    l->src2 = -1;
    l->stride = 1;
    l->bias = 1;
    long v = 0;
    const char *kind = nt ? tok[0] : "";
    if (strcmp(kind, "dense") == 0) {
        if (nt != 2 || !parse_long_(tok[1], 1, MAX_DIM, &v))
            return bad_(node, item, "expected 'dense N' with N in [1, 16777216]");
        l->kind = ALIG_LAYER_DENSE;
        l->units = (int)v;
    } else if (strcmp(kind, "conv") == 0 || strcmp(kind, "maxpool") == 0 ||
               strcmp(kind, "avgpool") == 0) {
        int conv = kind[0] == 'c';
        const char *form = conv ? "expected 'conv C [kK] [sS] [pP] [nobias]', e.g. 'conv 64 k3 s1 p1'"
                                : "expected 'maxpool K [sS] [pP]' or 'avgpool K [sS] [pP]', e.g. "
                                  "'maxpool 2' (stride defaults to K)";
        if (nt < 2 || !parse_long_(tok[1], 1, conv ? MAX_DIM : 64, &v))
            return bad_(node, item, form);
        l->kind = conv ? ALIG_LAYER_CONV : kind[0] == 'm' ? ALIG_LAYER_MAXPOOL : ALIG_LAYER_AVGPOOL;
        if (conv) {
            l->units = (int)v;
            l->k = 3;
        } else {
            l->k = (int)v;
            l->stride = (int)v;
        }
        int seen_k = 0, seen_s = 0, seen_p = 0, seen_nb = 0;
        for (int i = 2; i < nt; i++) {
            long o;
            if (conv && (o = option_(tok[i], 'k')) != -1) {
                if (seen_k++ || o < 1 || o > 64)
                    return bad_(node, item, "kernel size: one 'kK' with K in [1, 64]");
                l->k = (int)o;
            } else if ((o = option_(tok[i], 's')) != -1) {
                if (seen_s++ || o < 1 || o > 64)
                    return bad_(node, item, "stride: one 'sS' with S in [1, 64]");
                l->stride = (int)o;
            } else if ((o = option_(tok[i], 'p')) != -1) {
                if (seen_p++ || o < 0 || o > 64)
                    return bad_(node, item, "padding: one 'pP' with P in [0, 64]");
                l->pad = (int)o;
            } else if (conv && strcmp(tok[i], "nobias") == 0 && !seen_nb++) {
                l->bias = 0;
            } else {
                char why[384];
                snprintf(why, sizeof why, "unexpected '%s': %s", tok[i], form);
                return bad_(node, item, why);
            }
        }
        if (!conv && 2 * l->pad > l->k)
            return bad_(node, item, "pooling padding must be at most half the window (as PyTorch)");
    } else if (strcmp(kind, "dropout") == 0) {
        char *end = NULL;
        double p = nt == 2 ? strtod(tok[1], &end) : -1.0;
        if (nt != 2 || *end || !(p >= 0.0 && p < 1.0))
            return bad_(node, item, "expected 'dropout P' with P in [0, 1), e.g. 'dropout 0.3'");
        l->kind = ALIG_LAYER_DROPOUT;
        l->p = (float)p;
    } else if (nt == 1 && strcmp(kind, "relu") == 0) {
        l->kind = ALIG_LAYER_RELU;
    } else if (nt == 1 && strcmp(kind, "gap") == 0) {
        l->kind = ALIG_LAYER_GAP;
    } else if (nt == 1 && strcmp(kind, "bn") == 0) {
        l->kind = ALIG_LAYER_BN;
    } else if (nt == 1 && strcmp(kind, "flatten") == 0) {
        l->kind = ALIG_LAYER_FLATTEN;
    } else {
        return bad_(node, item, expected_);
    }
    return ALIG_OK;
}

/* ------------------------------------------------------------------------ */
/* shapes */

/* Append node *proto reading activation src (and src2); checks and records its output shape. */
static int emit_(parser_t *ps, const alig_layer_t *proto, int src, int src2, const char *item,
                 int *out)
{
    if (ps->n == ALIG_MAX_NODES)
        return alig_fail(ALIG_E_CONFIG, "[model] layers: more than %d layers", ALIG_MAX_NODES);
    int i = ps->n;
    alig_layer_t *l = &ps->nodes[i];
    *l = *proto;
    l->src = src;
    l->src2 = src2;
    l->in_c = ps->shape[src][0];
    l->in_h = ps->shape[src][1];
    l->in_w = ps->shape[src][2];
    l->in_dim = (int64_t)l->in_c * l->in_h * l->in_w;
    int c = l->in_c, h = l->in_h, w = l->in_w;
    char why[384];
    switch (l->kind) {
    case ALIG_LAYER_DENSE:
        c = l->units;
        h = w = 1;
        l->n_tensors = 2;
        break;
    case ALIG_LAYER_CONV:
    case ALIG_LAYER_MAXPOOL:
    case ALIG_LAYER_AVGPOOL: {
        int k = l->k, s = l->stride, p = l->pad;
        if (ps->syntax_only) {
            h = w = 1; /* any shape: only the layer list's grammar is checked */
        } else if (h + 2 * p < k || w + 2 * p < k) {
            snprintf(why, sizeof why,
                     "a %dx%d window with padding %d does not fit the %dx%dx%d input", k, k, p, c,
                     h, w);
            return bad_(i, item, why);
        } else {
            h = (h + 2 * p - k) / s + 1;
            w = (w + 2 * p - k) / s + 1;
        }
        if (l->kind == ALIG_LAYER_CONV) {
            c = l->units;
            l->n_tensors = l->bias ? 2 : 1;
        } else {
            l->units = 0;
        }
        break;
    }
    case ALIG_LAYER_GAP:
        h = w = 1;
        break;
    case ALIG_LAYER_FLATTEN:
        c = (int)(l->in_dim < MAX_DIM ? l->in_dim : MAX_DIM);
        h = w = 1;
        break;
    case ALIG_LAYER_BN:
        l->n_tensors = 2;
        break;
    case ALIG_LAYER_ADD:
        if (ps->syntax_only)
            break;
        if (ps->shape[src2][0] != c || ps->shape[src2][1] != h || ps->shape[src2][2] != w) {
            /* a 1x1 conv of stride st on the block's input gives the body's shape when
             * (in - 1) / st + 1 is the body's size on both sides */
            const int *in = ps->shape[ps->block_in];
            int st = 0;
            for (int t = 1; !st && t <= (in[1] > in[2] ? in[1] : in[2]); t++)
                if ((in[1] - 1) / t + 1 == h && (in[2] - 1) / t + 1 == w)
                    st = t;
            char fix[160], stride[16] = "";
            if (st > 1)
                snprintf(stride, sizeof stride, " s%d", st);
            if (st)
                snprintf(fix, sizeof fix,
                         "give the shortcut a projection, e.g. res(... | conv %d k1%s nobias)", c,
                         stride);
            else
                snprintf(fix, sizeof fix,
                         "no 1x1 projection of the block's input (%dx%dx%d) gives %dx%d: change "
                         "the body's padding or strides",
                         in[0], in[1], in[2], h, w);
            snprintf(why, sizeof why, "the body gives %dx%dx%d but the shortcut gives %dx%dx%d; %s",
                     c, h, w, ps->shape[src2][0], ps->shape[src2][1], ps->shape[src2][2], fix);
            return bad_(i, item, why);
        }
        break;
    case ALIG_LAYER_RELU:
    case ALIG_LAYER_DROPOUT:
        break;
    }
    l->out_c = c;
    l->out_h = h;
    l->out_w = w;
    l->out_dim = (int64_t)c * h * w;
    int64_t window = l->kind == ALIG_LAYER_CONV ? (int64_t)l->k * l->k : 1;
    if (!ps->syntax_only && (l->out_dim > MAX_SAMPLE || l->in_dim * window > MAX_SAMPLE)) {
        snprintf(why, sizeof why, "more than %lld values per sample", (long long)MAX_SAMPLE);
        return bad_(i, item, why);
    }
    snprintf(l->name, sizeof l->name, "%02d_%s", i, kind_word_[l->kind]);
    ps->shape[i + 1][0] = c;
    ps->shape[i + 1][1] = h;
    ps->shape[i + 1][2] = w;
    ps->n++;
    *out = i + 1;
    return ALIG_OK;
}

/* ------------------------------------------------------------------------ */
/* lists, groups, res blocks, repetitions */

static int parse_seq_(parser_t *ps, const char *s, size_t len, int src, int *out);

static void trim_(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Index of the ')' matching the '(' at s[open], or -1. */
static long matching_(const char *s, size_t len, size_t open)
{
    int depth = 0;
    for (size_t i = open; i < len; i++) {
        if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && --depth == 0)
            return (long)i;
    }
    return -1;
}

static int parse_item_(parser_t *ps, const char *s, size_t len, int src, int *out)
{
    char item[256];
    trim_(&s, &len);
    snprintf(item, sizeof item, "%.*s%s", (int)(len > 200 ? 200 : len), s, len > 200 ? "..." : "");
    if (len == 0)
        return bad_(ps->n, "", "empty item (two commas in a row, or a trailing comma?)");

    long reps = 1;
    size_t d = 0;
    while (d < len && isdigit((unsigned char)s[d]))
        d++;
    size_t star = d;
    while (star < len && isspace((unsigned char)s[star]))
        star++;
    if (d > 0 && star < len && s[star] == '*') {
        char num[16];
        if (d >= sizeof num)
            return bad_(ps->n, item, "repeat count too large");
        memcpy(num, s, d);
        num[d] = '\0';
        reps = strtol(num, NULL, 10);
        if (reps < 1 || reps > MAX_REPEAT)
            return bad_(ps->n, item, "repeat count N in 'N*item' must be in [1, 1000]");
        s += star + 1;
        len -= star + 1;
        trim_(&s, &len);
        if (len == 0)
            return bad_(ps->n, item, "nothing to repeat after '*'");
    }

    int is_res = len >= 3 && strncmp(s, "res", 3) == 0;
    size_t open = 3;
    while (is_res && open < len && isspace((unsigned char)s[open]))
        open++;
    is_res = is_res && open < len && s[open] == '(';
    int is_group = !is_res && s[0] == '(';
    if (!is_res && !is_group) {
        if (memchr(s, '(', len) || memchr(s, ')', len) || memchr(s, '|', len))
            return bad_(ps->n, item,
                        "unexpected '(', ')' or '|': blocks are written res(body) or "
                        "res(body | shortcut), groups (a, b)");
        char plain[256];
        if (len >= sizeof plain)
            return bad_(ps->n, item, "item too long");
        memcpy(plain, s, len);
        plain[len] = '\0';
        alig_layer_t proto;
        int rc = parse_layer_(plain, ps->n, &proto);
        for (long r = 0; !rc && r < reps; r++)
            rc = emit_(ps, &proto, src, -1, plain, &src);
        *out = src;
        return rc;
    }

    if (!is_res)
        open = 0;
    long close = matching_(s, len, open);
    if (close < 0)
        return bad_(ps->n, item, "unbalanced parentheses");
    if ((size_t)close != len - 1)
        return bad_(ps->n, item, "unexpected text after the closing ')'; separate items with ','");
    if (++ps->depth > 32)
        return bad_(ps->n, item, "blocks nested more than 32 deep");
    const char *inner = s + open + 1;
    size_t ilen = (size_t)close - open - 1;
    /* split a res block at its top-level '|' */
    size_t bar = ilen;
    int depth = 0, bars = 0;
    for (size_t i = 0; i < ilen; i++) {
        if (inner[i] == '(')
            depth++;
        else if (inner[i] == ')')
            depth--;
        else if (inner[i] == '|' && depth == 0) {
            bars++;
            bar = i;
        }
    }
    if (!is_res && bars)
        return bad_(ps->n, item, "'|' belongs inside res(body | shortcut)");
    if (bars > 1)
        return bad_(ps->n, item, "a res block has one '|' between body and shortcut");
    const char *body = inner;
    size_t blen = bar;
    trim_(&body, &blen);
    if (blen == 0)
        return bad_(ps->n, item, is_res ? "empty res body" : "empty group");
    int rc = ALIG_OK;
    for (long r = 0; !rc && r < reps; r++) {
        if (!is_res) {
            rc = parse_seq_(ps, body, blen, src, &src);
            continue;
        }
        int body_out, short_out = src;
        rc = parse_seq_(ps, body, blen, src, &body_out);
        if (!rc && bars) {
            const char *sc = inner + bar + 1;
            size_t slen = ilen - bar - 1;
            trim_(&sc, &slen);
            if (slen == 0)
                return bad_(ps->n, item, "empty shortcut after '|' (leave out '|' for identity)");
            rc = parse_seq_(ps, sc, slen, src, &short_out);
        }
        if (!rc) {
            alig_layer_t add;
            memset(&add, 0, sizeof add);
            add.kind = ALIG_LAYER_ADD;
            ps->block_in = src;
            rc = emit_(ps, &add, body_out, short_out, item, &src);
        }
    }
    ps->depth--;
    *out = src;
    return rc;
}

static int parse_seq_(parser_t *ps, const char *s, size_t len, int src, int *out)
{
    size_t start = 0;
    int depth = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? s[i] : ',';
        if (ch == '(') {
            depth++;
        } else if (ch == ')') {
            if (--depth < 0)
                return alig_fail(ALIG_E_CONFIG, "[model] layers: unbalanced ')' in '%.*s'",
                                 (int)(len > 200 ? 200 : len), s);
        } else if (ch == ',' && depth == 0) {
            int rc = parse_item_(ps, s + start, i - start, src, &src);
            if (rc)
                return rc;
            start = i + 1;
        }
    }
    if (depth != 0)
        return alig_fail(ALIG_E_CONFIG, "[model] layers: unbalanced '(' in '%.*s'",
                         (int)(len > 200 ? 200 : len), s);
    *out = src;
    return ALIG_OK;
}

static int spec_parse_(const char *spec, int c, int h, int w, int syntax_only,
                       alig_layer_t **nodes, int *count)
{
    *nodes = NULL;
    *count = 0;
    parser_t ps = {0};
    ps.syntax_only = syntax_only;
    ps.nodes = alig_calloc(ALIG_MAX_NODES, sizeof *ps.nodes, "layer list");
    ps.shape = alig_calloc(ALIG_MAX_NODES + 1, sizeof *ps.shape, "layer shapes");
    if (!ps.nodes || !ps.shape) {
        free(ps.nodes);
        free(ps.shape);
        return ALIG_E_MEMORY;
    }
    ps.shape[0][0] = c;
    ps.shape[0][1] = h;
    ps.shape[0][2] = w;
    size_t len = strlen(spec);
    const char *s = spec;
    trim_(&s, &len);
    int last = 0;
    int rc = len ? parse_seq_(&ps, s, len, 0, &last)
                 : alig_fail(ALIG_E_CONFIG, "[model] layers: empty list, expected e.g. 'dense 10'");
    if (!rc && last != ps.n)
        rc = alig_fail(ALIG_E_INTERNAL, "layer list: last output %d of %d nodes", last, ps.n);
    free(ps.shape);
    if (rc) {
        free(ps.nodes);
        return rc;
    }
    /* Backward runs the nodes in reverse: the first to reach an activation
     * overwrites its gradient, later ones (other consumers) add to it. */
    char *written = alig_calloc((size_t)ps.n + 1, 1, "layer list");
    if (!written) {
        free(ps.nodes);
        return ALIG_E_MEMORY;
    }
    for (int i = ps.n - 1; i >= 0; i--) {
        alig_layer_t *l = &ps.nodes[i];
        l->acc_src = written[l->src];
        written[l->src] = 1;
        if (l->src2 >= 0) {
            l->acc_src2 = written[l->src2];
            written[l->src2] = 1;
        }
    }
    free(written);
    alig_layer_t *fit = realloc(ps.nodes, sizeof *ps.nodes * (size_t)ps.n);
    *nodes = fit ? fit : ps.nodes; /* give back the unused part of the ALIG_MAX_NODES table */
    *count = ps.n;
    return ALIG_OK;
}

int alig_spec_parse(const char *spec, int c, int h, int w, alig_layer_t **nodes, int *count)
{
    return spec_parse_(spec, c, h, w, 0, nodes, count);
}

int alig_spec_check(const char *spec)
{
    alig_layer_t *nodes;
    int count;
    int rc = spec_parse_(spec, 1, 1, 1, 1, &nodes, &count);
    free(nodes);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* presets */

/* snprintf appending at *used; 0 when it did not fit */
static int add_(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int add_(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    if (*used >= size)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= size - *used) {
        *used = size;
        return 0;
    }
    *used += (size_t)w;
    return 1;
}

int alig_model_preset(const char *name, int n_classes, char *buf, size_t size)
{
    size_t used = 0;
    if (n_classes < 1)
        return alig_fail(ALIG_E_CONFIG, "[model] preset = %s: needs the number of classes", name);
    if (strcmp(name, "mlp") == 0) {
        add_(buf, size, &used, "dense 1024, relu, dense 1024, relu, dense %d", n_classes);
    } else if (strcmp(name, "cnn") == 0) {
        add_(buf, size, &used,
             "conv 32 k3 p1, relu, maxpool 2, conv 64 k3 p1, relu, maxpool 2, dense 128, relu, "
             "dense %d",
             n_classes);
    } else if (strncmp(name, "wrn-", 4) == 0) {
        int depth = 0, width = 0, nc = 0, ok;
        double drop = 0.0;
        ok = sscanf(name, "wrn-%d-%d%n", &depth, &width, &nc) == 2 && nc > 0;
        if (ok && name[nc] == '-') {
            char *end;
            drop = strtod(name + nc + 1, &end);
            ok = end != name + nc + 1 && *end == '\0';
        } else if (ok) {
            ok = name[nc] == '\0';
        }
        if (!ok || depth < 10 || depth > 1000 || (depth - 4) % 6 != 0 || width < 1 ||
            width > 64 || !(drop >= 0.0 && drop < 1.0))
            return alig_fail(ALIG_E_CONFIG,
                             "[model] preset = %s: expected wrn-D-K or wrn-D-K-P with depth D = "
                             "6N+4 >= 10 (e.g. 16, 28, 40), width K in [1, 64] and dropout P in "
                             "[0, 1), e.g. wrn-16-4 or wrn-28-10-0.3",
                             name);
        int blocks = (depth - 4) / 6, in = 16;
        char dr[32] = "";
        if (drop > 0.0)
            snprintf(dr, sizeof dr, "dropout %g, ", drop);
        add_(buf, size, &used, "conv 16 k3 p1 nobias");
        for (int g = 0; g < 3; g++) {
            int wd = (16 << g) * width, st = g == 0 ? 1 : 2;
            /* Zagoruyko & Komodakis' pre-activation block: when the width or the
             * stride changes, bn-relu runs before the split and a 1x1 projection
             * is the shortcut; otherwise the shortcut is the identity. */
            if (wd != in || st != 1)
                add_(buf, size, &used,
                     ", bn, relu, res(conv %d k3 s%d p1 nobias, bn, relu, %sconv %d k3 p1 nobias "
                     "| conv %d k1 s%d nobias)",
                     wd, st, dr, wd, wd, st);
            else
                add_(buf, size, &used,
                     ", res(bn, relu, conv %d k3 p1 nobias, bn, relu, %sconv %d k3 p1 nobias)", wd,
                     dr, wd);
            char rep[16] = "";
            if (blocks > 2)
                snprintf(rep, sizeof rep, "%d*", blocks - 1);
            if (blocks > 1)
                add_(buf, size, &used,
                     ", %sres(bn, relu, conv %d k3 p1 nobias, bn, relu, %sconv %d k3 p1 nobias)",
                     rep, wd, dr, wd);
            in = wd;
        }
        add_(buf, size, &used, ", bn, relu, gap, dense %d", n_classes);
    } else {
        return alig_fail(ALIG_E_CONFIG,
                         "[model] preset = %s: unknown preset; expected none, mlp, cnn or wrn-D-K "
                         "(e.g. wrn-16-4)",
                         name);
    }
    if (used >= size)
        return alig_fail(ALIG_E_CONFIG, "[model] preset = %s: expansion longer than %zu characters",
                         name, size - 1);
    return ALIG_OK;
}
