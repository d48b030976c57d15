/*
 * config.c -- the run configuration (alig/config.h), parsed with inih.
 *
 * Every key lives in one table (keys[] below) that drives parsing, --set
 * overrides and alig_config_write, so the three cannot drift apart.
 *
 * inih (Debian libinih 55) is built with INI_HANDLER_LINENO=0, so the
 * handler never learns the line number. We therefore feed inih through our
 * own reader (ini_parse_stream) that walks the text line by line and
 * counts lines; the handler runs right after the reader returned its line,
 * so the reader's count is the line of the key. The reader also
 *   - rejects lines longer than MAX_LINE characters (inih would silently
 *     split them into two lines),
 *   - strips leading whitespace, so an indented "key = value" line is an
 *     ordinary key and never an inih multi-line continuation of the
 *     previous key (which would otherwise look like a duplicate key),
 *   - rejects an unknown [section] header even when no key follows it,
 *   - stops the parse (returns NULL = end of input) after the first error.
 */
#include "alig/config.h"

#include "alig/error.h"
#include "alig/model.h"      /* defines: alig_model_preset (preset names are checked here) */
#include "layers-impl.h" /* alig_spec_check: the grammar of [model] layers */

#include <ini.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DATA_DIR "/usr/share/datasets/fashion-mnist/"

/* Longest accepted line, without its "\n" or "\r\n". */
#define MAX_LINE (INI_MAX_LINE - 1)
/* Largest accepted config file. */
#define MAX_FILE_BYTES (1024 * 1024)
/* "; --set " + assignment must itself be a valid line of cfg->text. */
#define SET_PREFIX "; --set "
#define SET_MAX (MAX_LINE - (int)(sizeof SET_PREFIX - 1))

/* ---------------------------------------------------------------- keys */

enum kind {
    K_U64,      /* uint64_t, decimal digits only */
    K_INT,      /* int in [min, max], max 0: INT_MAX */
    K_I64,      /* int64_t in [min, max], max 0: INT64_MAX */
    K_BOOL,     /* int 0/1 */
    K_NUM,      /* finite double in (lo|[lo, hi)|hi], optionally "none" */
    K_STR,      /* char[size], non-empty unless opt_path */
    K_ENUM_STR, /* char[size] holding one of choices */
    K_ENUM_INT  /* int holding the index of one of choices */
};

struct key {
    const char *section;
    const char *name;
    enum kind kind;
    size_t off;
    size_t size;
    long long min, max;         /* K_INT, K_I64; max 0: the type's largest value */
    double lo, hi;              /* K_NUM */
    bool lo_open, hi_open;      /* K_NUM: exclusive bounds */
    bool none_ok;               /* K_NUM: "none" allowed, stored as none_value */
    double none_value;
    bool opt_path;              /* K_STR: "none" or "" allowed, stored as "" */
    const char *const *choices; /* K_ENUM_*: NULL-terminated */
};

/* Designated initializers throughout, so unset members are zero without warnings. */
#define KEY(sec, nm, kd, f)                                                                  \
    .section = (sec), .name = (nm), .kind = (kd), .off = offsetof(alig_config_t, f),         \
    .size = sizeof(((alig_config_t *)0)->f)

static const char *const formats[] = {"idx", "cifar10", "cifar100", "hdf5", NULL};
static const char *const normalizations[] = {"none", "standard", "given", NULL};
static const char *const hdf5_layouts[] = {"nchw", "nhwc", NULL};
#define DEFAULT_LAYERS "dense 1024, relu, dense 1024, relu, dense 10"
static const char *const inits[] = {"auto", "he", "glorot", NULL};
static const char *const optimizers[] = {"alig", "sgd", "adam", "adamw", NULL};
static const char *const schedules[] = {"none", "step", "cosine", NULL};
static const char *const momentum_types[] = {"standard", "adjusted", NULL};
static const char *const nonfinite_policies[] = {"stop", "skip", NULL};
static const char *const parallel_modes[] = {"auto", "blas", "batch", NULL};
static const char *const reduce_modes[] = {"auto", "mpi", "shm", NULL};

static const char *const sections[] = {"run", "data", "model", "optimizer", "eval", "checkpoint",
                                       NULL};

static const struct key keys[] = {
    {KEY("run", "seed", K_U64, seed)},
    {KEY("run", "epochs", K_INT, epochs), .min = 1},
    {KEY("run", "max_steps", K_I64, max_steps), .min = 0},
    {KEY("run", "out_dir", K_STR, out_dir)},
    /* a cap, so a typo (threads = 100000000) is an error and not an attempt to start
     * that many BLAS threads */
    {KEY("run", "threads", K_INT, threads), .min = 0, .max = ALIG_MAX_THREADS},
    {KEY("run", "log_every", K_INT, log_every), .min = 0},
    {KEY("run", "check_every", K_INT, check_every), .min = 0},
    {KEY("run", "nonfinite", K_ENUM_INT, skip_nonfinite), .choices = nonfinite_policies},
    {KEY("run", "profile", K_BOOL, profile)},
    {KEY("run", "overlap", K_BOOL, overlap)},
    {KEY("run", "parallel", K_ENUM_INT, parallel), .choices = parallel_modes},
    {KEY("run", "reduce", K_ENUM_INT, reduce), .choices = reduce_modes},
    {KEY("run", "bucket_mb", K_NUM, bucket_mb), .lo = 0, .hi = 1024},
    {KEY("run", "metrics_every", K_INT, metrics_every), .min = 0},

    {KEY("data", "format", K_ENUM_STR, format), .choices = formats},
    {KEY("data", "train_images", K_STR, train_images)},
    {KEY("data", "train_labels", K_STR, train_labels)},
    {KEY("data", "test_images", K_STR, test_images), .opt_path = true},
    {KEY("data", "test_labels", K_STR, test_labels), .opt_path = true},
    {KEY("data", "batch_size", K_INT, batch_size), .min = 1},
    {KEY("data", "drop_last", K_BOOL, drop_last)},
    {KEY("data", "train_limit", K_I64, train_limit), .min = 0},
    {KEY("data", "test_limit", K_I64, test_limit), .min = 0},
    {KEY("data", "normalize", K_ENUM_STR, normalize), .choices = normalizations},
    {KEY("data", "mean", K_STR, mean), .opt_path = true},
    {KEY("data", "std", K_STR, std), .opt_path = true},
    {KEY("data", "hdf5_images", K_STR, hdf5_images)},
    {KEY("data", "hdf5_labels", K_STR, hdf5_labels)},
    {KEY("data", "hdf5_test_images", K_STR, hdf5_test_images), .opt_path = true},
    {KEY("data", "hdf5_test_labels", K_STR, hdf5_test_labels), .opt_path = true},
    {KEY("data", "hdf5_layout", K_ENUM_STR, hdf5_layout), .choices = hdf5_layouts},
    {KEY("data", "augment_crop", K_INT, augment_crop), .min = 0},
    {KEY("data", "augment_flip", K_BOOL, augment_flip)},

    {KEY("model", "layers", K_STR, layers)},
    {KEY("model", "init", K_ENUM_STR, init), .choices = inits},
    {KEY("model", "preset", K_STR, preset), .opt_path = true},

    {KEY("optimizer", "name", K_ENUM_STR, optimizer), .choices = optimizers},
    {KEY("optimizer", "max_lr", K_NUM, max_lr), .lo = 0, .hi = INFINITY, .lo_open = true,
     .none_ok = true, .none_value = NAN},
    {KEY("optimizer", "delta", K_NUM, delta), .lo = 0, .hi = INFINITY, .lo_open = true},
    {KEY("optimizer", "momentum", K_NUM, momentum), .lo = 0, .hi = 1, .hi_open = true},
    {KEY("optimizer", "momentum_type", K_ENUM_INT, adjusted_momentum),
     .choices = momentum_types},
    {KEY("optimizer", "lr", K_NUM, lr), .lo = 0, .hi = INFINITY, .lo_open = true},
    {KEY("optimizer", "weight_decay", K_NUM, weight_decay), .lo = 0, .hi = INFINITY},
    {KEY("optimizer", "nesterov", K_BOOL, nesterov)},
    {KEY("optimizer", "beta1", K_NUM, beta1), .lo = 0, .hi = 1, .hi_open = true},
    {KEY("optimizer", "beta2", K_NUM, beta2), .lo = 0, .hi = 1, .hi_open = true},
    {KEY("optimizer", "eps", K_NUM, eps), .lo = 0, .hi = INFINITY, .lo_open = true},
    {KEY("optimizer", "schedule", K_ENUM_STR, schedule), .choices = schedules},
    {KEY("optimizer", "milestones", K_STR, milestones), .opt_path = true},
    {KEY("optimizer", "decay", K_NUM, decay), .lo = 0, .hi = 1, .lo_open = true},
    {KEY("optimizer", "max_norm", K_NUM, max_norm), .lo = 0, .hi = INFINITY, .lo_open = true,
     .none_ok = true, .none_value = INFINITY},

    {KEY("eval", "every", K_INT, eval_every), .min = 0},
    {KEY("eval", "batch_size", K_INT, eval_batch_size), .min = 1},

    {KEY("checkpoint", "dir", K_STR, ckpt_dir)},
    {KEY("checkpoint", "every_steps", K_INT, ckpt_every_steps), .min = 0},
    {KEY("checkpoint", "every_epochs", K_INT, ckpt_every_epochs), .min = 0},
    {KEY("checkpoint", "keep", K_INT, ckpt_keep), .min = 0},
    {KEY("checkpoint", "at_end", K_BOOL, ckpt_at_end)},
    {KEY("checkpoint", "resume", K_STR, ckpt_resume)},
    {KEY("checkpoint", "init", K_STR, ckpt_init), .opt_path = true},
    {KEY("checkpoint", "signals", K_STR, ckpt_signals)},
};

#define NKEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(sizeof keys / sizeof keys[0] <= ALIG_CONFIG_MAX_KEYS,
               "alig_config_t.origin needs one slot per key: raise ALIG_CONFIG_MAX_KEYS");

static bool known_section(const char *s)
{
    for (int i = 0; sections[i]; i++)
        if (strcmp(s, sections[i]) == 0)
            return true;
    return false;
}

static int find_key(const char *section, const char *name)
{
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return i;
    return -1;
}

/* "seed, epochs, ..." -- the keys of one section, for error messages. */
static void section_keys(const char *section, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < NKEYS && len < n; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", keys[i].name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* "one of: a, b, c" */
static void choice_list(const char *const *choices, char *buf, size_t n)
{
    size_t len = 0;
    int w = snprintf(buf, n, "one of:");
    len = w > 0 ? (size_t)w : 0;
    for (int i = 0; choices[i] && len < n; i++) {
        w = snprintf(buf + len, n - len, "%s %s", i ? "," : "", choices[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* The shortest decimal that reads back as exactly v: --print-config writes
 * 0.2, not 0.20000000000000001, and its output still parses to the same bits. */
static const char *num_text(char *buf, size_t n, double v)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* What a key accepts, as in "expected <this>". */
static void describe(const struct key *k, char *buf, size_t n)
{
    switch (k->kind) {
    case K_U64:
        snprintf(buf, n, "an unsigned integer in [0, %" PRIu64 "]", UINT64_MAX);
        break;
    case K_INT:
        snprintf(buf, n, "an integer in [%lld, %lld]", k->min,
                 k->max ? k->max : (long long)INT_MAX);
        break;
    case K_I64:
        snprintf(buf, n, "an integer in [%lld, %lld]", k->min,
                 k->max ? k->max : (long long)INT64_MAX);
        break;
    case K_BOOL:
        snprintf(buf, n, "a boolean (true/false, yes/no, on/off, 1/0)");
        break;
    case K_NUM: {
        const char *none = k->none_ok ? "none or " : "";
        char lo[32], hi[32];
        if (isinf(k->hi))
            snprintf(buf, n, "%sa number %s %s", none, k->lo_open ? ">" : ">=",
                     num_text(lo, sizeof lo, k->lo));
        else
            snprintf(buf, n, "%sa number in %c%s, %s%c", none, k->lo_open ? '(' : '[',
                     num_text(lo, sizeof lo, k->lo), num_text(hi, sizeof hi, k->hi),
                     k->hi_open ? ')' : ']');
        break;
    }
    case K_STR:
        snprintf(buf, n, "%s of at most %zu characters",
                 k->opt_path ? "none or a path" : "a non-empty value", k->size - 1);
        break;
    case K_ENUM_STR:
    case K_ENUM_INT:
        choice_list(k->choices, buf, n);
        break;
    }
}

/* ------------------------------------------------------ value parsing */

static bool parse_ll(const char *s, long long *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s)) /* also rejects "-1", which strtoull would wrap */
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE || v > UINT64_MAX)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_num(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) /* rejects inf, nan and overflow */
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return true;
        }
    }
    return false;
}

static bool in_range(const struct key *k, double v)
{
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo))
        return false;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi))
        return false;
    return true;
}

/*
 * Check `value` against key k and store it in cfg. Writes nothing on error.
 * `where` is "file:line" or "--set a.b=c".
 */
static int set_value(alig_config_t *cfg, const struct key *k, const char *value, const char *where)
{
    char *field = (char *)cfg + k->off;
    char allowed[256];
    bool ok = false;

    if (!*value && !(k->kind == K_STR && k->opt_path)) {
        describe(k, allowed, sizeof allowed);
        return alig_fail(ALIG_E_CONFIG, "%s: [%s] %s: empty value: expected %s", where,
                         k->section, k->name, allowed);
    }

    switch (k->kind) {
    case K_U64: {
        uint64_t v;
        if ((ok = parse_u64(value, &v)))
            memcpy(field, &v, sizeof v);
        break;
    }
    case K_INT: {
        long long v;
        if ((ok = parse_ll(value, &v) && v >= k->min && v <= (k->max ? k->max : INT_MAX))) {
            int iv = (int)v;
            memcpy(field, &iv, sizeof iv);
        }
        break;
    }
    case K_I64: {
        long long v;
        if ((ok = parse_ll(value, &v) && v >= k->min && v <= (k->max ? k->max : INT64_MAX))) {
            int64_t iv = (int64_t)v;
            memcpy(field, &iv, sizeof iv);
        }
        break;
    }
    case K_BOOL: {
        int v;
        if ((ok = parse_bool(value, &v)))
            memcpy(field, &v, sizeof v);
        break;
    }
    case K_NUM: {
        double v;
        if (k->none_ok && strcmp(value, "none") == 0) {
            v = k->none_value;
            ok = true;
        } else {
            ok = parse_num(value, &v) && in_range(k, v);
        }
        if (ok)
            memcpy(field, &v, sizeof v);
        break;
    }
    case K_STR: {
        const char *v = value;
        if (k->opt_path && strcmp(v, "none") == 0)
            v = "";
        /* found by fuzzing: a leading ';' or '#' would turn into a comment when the
         * config is written back (checkpoints store it), so refuse it here */
        if (*v == ';' || *v == '#')
            return alig_fail(ALIG_E_CONFIG,
                             "%s: [%s] %s = %s: a value must not start with '%c'", where,
                             k->section, k->name, value, *v);
        if ((ok = strlen(v) < k->size))
            memcpy(field, v, strlen(v) + 1);
        break;
    }
    case K_ENUM_STR:
    case K_ENUM_INT:
        for (int i = 0; k->choices[i]; i++) {
            if (strcmp(value, k->choices[i]) != 0)
                continue;
            if (k->kind == K_ENUM_INT) {
                memcpy(field, &i, sizeof i);
            } else {
                if (strlen(value) >= k->size) /* table bug: a choice longer than its field */
                    return alig_fail(ALIG_E_INTERNAL, "config: [%s] %s: choice %s too long",
                                     k->section, k->name, value);
                memcpy(field, value, strlen(value) + 1);
            }
            ok = true;
            break;
        }
        break;
    }
    if (ok)
        return ALIG_OK;
    describe(k, allowed, sizeof allowed);
    return alig_fail(ALIG_E_CONFIG, "%s: [%s] %s = %s: expected %s", where, k->section, k->name,
                     value, allowed);
}

/*
 * Resolve section/name and set the value. seen_line (NULL for --set)
 * records the line each key was first set on, to reject duplicates.
 * `line` becomes the key's origin (ALIG_ORIGIN_SET for --set).
 */
static int apply(alig_config_t *cfg, const char *section, const char *name, const char *value,
                 const char *where, int *seen_line, int line)
{
    if (!*section)
        return alig_fail(ALIG_E_CONFIG,
                         "%s: %s = %s: key outside any section; put it under [run], [data], "
                         "[model], [optimizer], [eval] or [checkpoint]",
                         where, name, value);
    if (!known_section(section))
        return alig_fail(ALIG_E_CONFIG,
                         "%s: [%s] %s: unknown section [%s]; expected one of [run], [data], "
                         "[model], [optimizer], [eval], [checkpoint]",
                         where, section, name, section);
    int i = find_key(section, name);
    if (i < 0) {
        char list[512];
        section_keys(section, list, sizeof list);
        return alig_fail(ALIG_E_CONFIG, "%s: [%s] %s: unknown key; [%s] takes: %s", where, section,
                         name, section, list);
    }
    if (seen_line && seen_line[i])
        return alig_fail(ALIG_E_CONFIG, "%s: [%s] %s: duplicate key (first set on line %d)", where,
                         section, name, seen_line[i]);
    int rc = set_value(cfg, &keys[i], value, where);
    if (rc == ALIG_OK && seen_line)
        seen_line[i] = line;
    if (rc == ALIG_OK)
        cfg->origin[i] = line;
    return rc;
}

/* ------------------------------------------------------------- parse */

struct parse {
    alig_config_t *cfg;
    const char *name; /* for messages */
    const char *p;    /* next unread character of the text */
    int line;         /* line last handed to inih */
    int seen_line[NKEYS];
    int err;          /* first error found by the reader or the handler */
    int err_line;
};

static char *reader(char *str, int num, void *stream)
{
    struct parse *ps = stream;
    if (ps->err || !*ps->p)
        return NULL;

    const char *s = ps->p;
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    ps->p = nl ? nl + 1 : s + len;
    ps->line++;

    if (len && s[len - 1] == '\r')
        len--;
    const char *cr = memchr(s, '\r', len);
    if (cr) { /* inih would take the text after it as part of this line: lost keys */
        ps->err = alig_fail(ALIG_E_CONFIG, "%s:%d: carriage return inside the line (old Mac line "
                            "ends?); expected \\n or \\r\\n line ends", ps->name, ps->line);
        ps->err_line = ps->line;
        return NULL;
    }
    if (ps->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
        s += 3;
        len -= 3;
    }

    size_t limit = (size_t)MAX_LINE;
    if (num > 0 && (size_t)num - 1 < limit)
        limit = (size_t)num - 1;
    if (len > limit) {
        ps->err = alig_fail(ALIG_E_CONFIG, "%s:%d: line is %zu characters long; at most %zu allowed",
                            ps->name, ps->line, len, limit);
        ps->err_line = ps->line;
        return NULL;
    }

    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }

    /* A "[section]" header: reject unknown names here, even if no key follows. */
    if (len && *s == '[') {
        const char *close = memchr(s, ']', len);
        if (close) {
            char sec[MAX_LINE + 1];
            size_t sl = (size_t)(close - s - 1);
            memcpy(sec, s + 1, sl);
            sec[sl] = '\0';
            const char *rest = close + 1, *end = s + len;
            while (rest < end && isspace((unsigned char)*rest))
                rest++;
            if (rest < end && *rest != ';' && *rest != '#') { /* inih would ignore it */
                ps->err = alig_fail(ALIG_E_CONFIG, "%s:%d: [%s]: text after the section header "
                                    "('%.*s'); expected only a comment there",
                                    ps->name, ps->line, sec, (int)(end - rest > 40 ? 40 : end - rest),
                                    rest);
                ps->err_line = ps->line;
                return NULL;
            }
            if (!known_section(sec)) {
                ps->err = alig_fail(ALIG_E_CONFIG,
                                    "%s:%d: [%s]: unknown section; expected one of [run], [data], "
                                    "[model], [optimizer], [eval], [checkpoint]",
                                    ps->name, ps->line, sec);
                ps->err_line = ps->line;
                return NULL;
            }
        }
    }

    memcpy(str, s, len);
    str[len] = '\0';
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *ps = user;
    if (ps->err)
        return 0;
    char where[ALIG_PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", ps->name, ps->line);
    if (!*name) { /* "= 5": inih passes an empty name */
        ps->err = alig_fail(ALIG_E_CONFIG, "%s: [%s] = %s: no key name before the '='", where,
                            section, value ? value : "");
        ps->err_line = ps->line;
        return 0;
    }
    int rc = apply(ps->cfg, section, name, value ? value : "", where, ps->seen_line, ps->line);
    if (rc != ALIG_OK) {
        ps->err = rc;
        ps->err_line = ps->line;
        return 0;
    }
    return 1;
}

/* Report inih's own syntax error at `line`, quoting the line. */
static int syntax_error(const char *text, const char *name, int line)
{
    const char *s = text;
    for (int i = 1; i < line && s; i++) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (!s)
        s = "";
    size_t len = strcspn(s, "\r\n");
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    const int show = 80;
    return alig_fail(ALIG_E_CONFIG,
                     "%s:%d: syntax error: expected [section], key = value or a comment, got: %.*s%s",
                     name, line, (int)(len > (size_t)show ? (size_t)show : len), s,
                     len > (size_t)show ? "..." : "");
}

int alig_config_parse(alig_config_t *cfg, const char *text, const char *name)
{
    if (!name || !*name)
        name = "(config)";
    if (!text)
        return alig_fail(ALIG_E_CONFIG, "%s: no config text", name);

    /* Parse into a copy so that cfg is untouched on error. */
    alig_config_t tmp = *cfg;
    struct parse ps = {.cfg = &tmp, .name = name, .p = text};
    int ret = ini_parse_stream(reader, &ps, handler, &ps);

    if (ret > 0 && (!ps.err || ret < ps.err_line))
        return syntax_error(text, name, ret);
    if (ps.err)
        return ps.err; /* message already recorded */
    if (ret != 0)
        return alig_fail(ALIG_E_CONFIG, "%s: inih failed (%d)", name, ret);

    size_t n = strlen(text);
    char *copy = alig_malloc(n + 1, "config text");
    if (!copy)
        return ALIG_E_MEMORY;
    memcpy(copy, text, n + 1);
    free(cfg->text);
    *cfg = tmp;
    cfg->text = copy;
    snprintf(cfg->source, sizeof cfg->source, "%s", name);
    return ALIG_OK;
}

/* ------------------------------------------------------ files, --set */

void alig_config_defaults(alig_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 42;
    cfg->epochs = 10;
    cfg->max_steps = 0;
    snprintf(cfg->out_dir, sizeof cfg->out_dir, "runs/default");
    cfg->threads = 0;
    cfg->log_every = 0;
    cfg->check_every = 100;
    cfg->profile = 0;
    cfg->overlap = 1;
    cfg->bucket_mb = 4.0;
    cfg->metrics_every = 10;

    snprintf(cfg->format, sizeof cfg->format, "idx");
    snprintf(cfg->train_images, sizeof cfg->train_images, DATA_DIR "train-images-idx3-ubyte.gz");
    snprintf(cfg->train_labels, sizeof cfg->train_labels, DATA_DIR "train-labels-idx1-ubyte.gz");
    snprintf(cfg->test_images, sizeof cfg->test_images, DATA_DIR "t10k-images-idx3-ubyte.gz");
    snprintf(cfg->test_labels, sizeof cfg->test_labels, DATA_DIR "t10k-labels-idx1-ubyte.gz");
    cfg->batch_size = 128;
    cfg->drop_last = 0;
    cfg->train_limit = 0;
    cfg->test_limit = 0;
    snprintf(cfg->normalize, sizeof cfg->normalize, "standard");
    cfg->mean[0] = cfg->std[0] = '\0';
    snprintf(cfg->hdf5_images, sizeof cfg->hdf5_images, "images");
    snprintf(cfg->hdf5_labels, sizeof cfg->hdf5_labels, "labels");
    cfg->hdf5_test_images[0] = cfg->hdf5_test_labels[0] = '\0';
    snprintf(cfg->hdf5_layout, sizeof cfg->hdf5_layout, "nchw");
    cfg->augment_crop = 0;
    cfg->augment_flip = 0;

    snprintf(cfg->layers, sizeof cfg->layers, DEFAULT_LAYERS);
    snprintf(cfg->init, sizeof cfg->init, "auto");
    cfg->preset[0] = '\0';

    snprintf(cfg->optimizer, sizeof cfg->optimizer, "alig");
    cfg->max_lr = NAN;
    cfg->delta = 1e-5;
    cfg->momentum = 0.9;
    cfg->adjusted_momentum = 0;
    cfg->max_norm = INFINITY;
    cfg->lr = 0.1;
    cfg->weight_decay = 0.0;
    cfg->nesterov = 0;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->eps = 1e-8;
    snprintf(cfg->schedule, sizeof cfg->schedule, "none");
    cfg->milestones[0] = '\0';
    cfg->decay = 0.1;

    cfg->eval_every = 1;
    cfg->eval_batch_size = 1000;

    snprintf(cfg->ckpt_dir, sizeof cfg->ckpt_dir, ".");
    cfg->ckpt_every_steps = 0;
    cfg->ckpt_every_epochs = 1;
    cfg->ckpt_keep = 3;
    cfg->ckpt_at_end = 1;
    snprintf(cfg->ckpt_resume, sizeof cfg->ckpt_resume, "auto");
    cfg->ckpt_init[0] = '\0';
    snprintf(cfg->ckpt_signals, sizeof cfg->ckpt_signals, "TERM, USR1, INT");

    cfg->path[0] = '\0';
    cfg->text = NULL;
}

int alig_config_read_file(const char *path, char **out)
{
    *out = NULL;
    if (!path || !*path)
        return alig_fail(ALIG_E_CONFIG, "config: empty file name");
    FILE *f = fopen(path, "rb");
    if (!f)
        return alig_fail(ALIG_E_CONFIG, "%s: cannot open: %s", path, strerror(errno));

    /* Read one byte more than allowed to detect an oversized file (or pipe). */
    char *buf = alig_malloc((size_t)MAX_FILE_BYTES + 2, "config file");
    if (!buf) {
        fclose(f);
        return ALIG_E_MEMORY;
    }
    size_t n = 0;
    while (n < (size_t)MAX_FILE_BYTES + 1) {
        errno = 0;
        size_t r = fread(buf + n, 1, (size_t)MAX_FILE_BYTES + 1 - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int read_errno = errno;
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return alig_fail(ALIG_E_CONFIG, "%s: cannot read: %s", path,
                         strerror(read_errno ? read_errno : EIO));
    }
    if (n > (size_t)MAX_FILE_BYTES) {
        free(buf);
        return alig_fail(ALIG_E_CONFIG, "%s: file larger than %d bytes (1 MiB); not a config file?",
                         path, MAX_FILE_BYTES);
    }
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        int line = 1;
        for (const char *c = buf; c < nul; c++)
            line += *c == '\n';
        free(buf);
        return alig_fail(ALIG_E_CONFIG, "%s:%d: file contains a NUL byte; not a text file?", path,
                         line);
    }
    buf[n] = '\0';
    char *shrunk = realloc(buf, n + 1);
    *out = shrunk ? shrunk : buf;
    return ALIG_OK;
}

int alig_config_load(alig_config_t *cfg, const char *path)
{
    alig_config_defaults(cfg);
    if (path && strlen(path) >= sizeof cfg->path)
        return alig_fail(ALIG_E_CONFIG, "%.64s...: config path longer than %zu characters", path,
                         sizeof cfg->path - 1);
    char *text;
    int rc = alig_config_read_file(path, &text);
    if (rc != ALIG_OK)
        return rc;
    rc = alig_config_parse(cfg, text, path);
    free(text);
    if (rc == ALIG_OK)
        snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return rc;
}

/* Copy s[0..n) to buf (size bufsize) without surrounding whitespace. */
static void trim_copy(char *buf, size_t bufsize, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= bufsize)
        n = bufsize - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

int alig_config_set(alig_config_t *cfg, const char *assignment)
{
    if (!assignment)
        return alig_fail(ALIG_E_CONFIG, "--set: missing section.key=value");
    size_t n = strlen(assignment);
    if (n > (size_t)SET_MAX)
        return alig_fail(ALIG_E_CONFIG, "--set %.40s...: assignment is %zu characters long; at most %d allowed",
                         assignment, n, SET_MAX);
    for (size_t i = 0; i < n; i++)
        if (iscntrl((unsigned char)assignment[i]) && assignment[i] != '\t')
            return alig_fail(ALIG_E_CONFIG,
                             "--set: assignment contains control character 0x%02x at offset %zu",
                             (unsigned char)assignment[i], i);

    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    char section[SET_MAX + 1], name[SET_MAX + 1], value[SET_MAX + 1];
    if (dot) {
        trim_copy(section, sizeof section, assignment, (size_t)(dot - assignment));
        trim_copy(name, sizeof name, dot + 1, (size_t)(eq - dot - 1));
        trim_copy(value, sizeof value, eq + 1, strlen(eq + 1));
    }
    if (!dot || !*section || !*name)
        return alig_fail(ALIG_E_CONFIG, "--set %s: expected section.key=value, e.g. data.batch_size=256",
                         assignment);
    for (const char *c = value; *c; c++)
        if (*c == ';' && c > value && isspace((unsigned char)c[-1]))
            return alig_fail(ALIG_E_CONFIG,
                             "--set %s: value must not contain ';' after whitespace (it would start a comment in the config file)",
                             assignment);

    /* Prepare the new text first, so nothing changes if this fails. */
    size_t old = cfg->text ? strlen(cfg->text) : 0;
    bool need_nl = old && cfg->text[old - 1] != '\n';
    size_t add = (need_nl ? 1 : 0) + strlen(SET_PREFIX) + n + 1;
    char *text = alig_malloc(old + add + 1, "config text");
    if (!text)
        return ALIG_E_MEMORY;
    snprintf(text, old + add + 1, "%s%s" SET_PREFIX "%s\n", cfg->text ? cfg->text : "",
             need_nl ? "\n" : "", assignment);

    char where[SET_MAX + 16];
    snprintf(where, sizeof where, "--set %s", assignment);
    int rc = apply(cfg, section, name, value, where, NULL, ALIG_ORIGIN_SET);
    if (rc != ALIG_OK) {
        free(text);
        return rc;
    }
    free(cfg->text);
    cfg->text = text;
    return ALIG_OK;
}

/* ---------------------------------------------------- validate, write */

int alig_config_milestones(const alig_config_t *cfg, int *out)
{
    int n = 0, prev = 0;
    const char *p = cfg->milestones;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v <= prev || v > 1000000 || (*end && *end != ',' && *end != ' ')) {
            alig_fail(ALIG_E_CONFIG,
                      "[optimizer] milestones = %s: expected increasing epoch numbers >= 1 "
                      "separated by commas, e.g. 30, 60, 90",
                      cfg->milestones);
            return -1;
        }
        if (n == ALIG_CONFIG_MAX_MILESTONES) {
            alig_fail(ALIG_E_CONFIG, "[optimizer] milestones = %s: at most %d epochs",
                      cfg->milestones, ALIG_CONFIG_MAX_MILESTONES);
            return -1;
        }
        out[n++] = (int)v;
        prev = (int)v;
        p = end;
    }
    return n;
}

int alig_config_signals(const alig_config_t *cfg, int *sigs, int max)
{
    static const struct {
        const char *name;
        int sig;
    } known[] = {{"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                 {"INT", SIGINT},   {"HUP", SIGHUP},   {"XCPU", SIGXCPU}};
    static const char expected[] = "expected a list of TERM, USR1, USR2, INT, HUP, XCPU "
                                   "separated by commas or spaces, or none";
    const char *list = cfg->ckpt_signals;
    int n = 0;
    const char *p = list + strspn(list, " \t");
    if (!*p) {
        alig_fail(ALIG_E_CONFIG, "[checkpoint] signals = %s: empty; write none for no signals",
                  list);
        return -1;
    }
    /* entries separated by one comma and/or spaces: "TERM,,USR1", a leading or a
     * trailing comma is an empty entry (a typo, or a signal left out) */
    while (*p) {
        if (*p == ',') {
            alig_fail(ALIG_E_CONFIG, "[checkpoint] signals = %s: empty entry at character %d; %s",
                      list, (int)(p - list) + 1, expected);
            return -1;
        }
        size_t len = strcspn(p, ", \t");
        if (len == 4 && strncasecmp(p, "none", 4) == 0) {
            if (n > 0 || p[len + strspn(p + len, " \t")]) {
                alig_fail(ALIG_E_CONFIG, "[checkpoint] signals = %s: none must stand alone", list);
                return -1;
            }
            return 0;
        }
        size_t skip = len > 3 && strncasecmp(p, "SIG", 3) == 0 ? 3 : 0;
        int sig = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (len - skip == strlen(known[i].name) &&
                strncasecmp(p + skip, known[i].name, len - skip) == 0)
                sig = known[i].sig;
        if (!sig) {
            alig_fail(ALIG_E_CONFIG, "[checkpoint] signals = %s: unknown signal '%.*s'; %s", list,
                      (int)len, p, expected);
            return -1;
        }
        if (n < max)
            sigs[n++] = sig;
        p += len;
        p += strspn(p, " \t");
        if (*p == ',') {
            const char *comma = p;
            p++;
            p += strspn(p, " \t");
            if (!*p || *p == ',') {
                alig_fail(ALIG_E_CONFIG,
                          "[checkpoint] signals = %s: empty entry after the comma at character "
                          "%d; %s",
                          list, (int)(comma - list) + 1, expected);
                return -1;
            }
        }
    }
    return n;
}

/* Index in keys[] of "section.key", or -1. */
static int find_dotted_(const char *key)
{
    const char *dot = strchr(key, '.');
    if (!dot || dot - key >= 32)
        return -1;
    char section[32];
    snprintf(section, sizeof section, "%.*s", (int)(dot - key), key);
    return find_key(section, dot + 1);
}

const char *alig_config_origin(const alig_config_t *cfg, const char *key, char *buf, size_t size)
{
    int i = find_dotted_(key);
    int origin = i >= 0 ? cfg->origin[i] : 0;
    const char *file = cfg->path[0] ? cfg->path : cfg->source;
    if (origin == ALIG_ORIGIN_SET)
        snprintf(buf, size, "--set %s", key);
    else if (origin > 0 && file[0])
        snprintf(buf, size, "%s:%d", file, origin);
    else if (origin > 0)
        snprintf(buf, size, "line %d", origin);
    else
        snprintf(buf, size, "%s", file);
    return buf;
}

/*
 * The prefix of a validation message: the origins of the keys involved
 * (a NULL-terminated list of "section.key") that were set in the file or
 * with --set, joined with " and ", then ": "; the file's path when every
 * one of them has its default; "" without a file.
 */
static const char *where_(const alig_config_t *cfg, char *buf, size_t size,
                          const char *const *involved)
{
    size_t used = 0;
    buf[0] = '\0';
    char one[ALIG_PATH_MAX + 64], seen[4][ALIG_PATH_MAX + 64];
    int n_seen = 0;
    for (int k = 0; involved[k]; k++) {
        int i = find_dotted_(involved[k]);
        if (i < 0 || cfg->origin[i] == 0)
            continue;
        alig_config_origin(cfg, involved[k], one, sizeof one);
        int dup = 0;
        for (int j = 0; j < n_seen; j++)
            dup |= strcmp(seen[j], one) == 0;
        if (dup || n_seen == 4)
            continue;
        snprintf(seen[n_seen++], sizeof seen[0], "%s", one);
        int w = snprintf(buf + used, size - used, "%s%s", used ? " and " : "", one);
        used += w > 0 && (size_t)w < size - used ? (size_t)w : 0;
    }
    if (!used) {
        const char *file = cfg->path[0] ? cfg->path : cfg->source;
        snprintf(buf, size, "%s", file);
        used = strlen(buf);
    }
    if (used && used + 2 < size)
        memcpy(buf + used, ": ", 3);
    return buf;
}

#define WHERE(...) where_(cfg, where, sizeof where, (const char *const[]){__VA_ARGS__, NULL})

int alig_config_validate(const alig_config_t *cfg, int world_size)
{
    if (world_size < 1)
        return alig_fail(ALIG_E_INTERNAL, "alig_config_validate: world size %d < 1", world_size);
    char where[3 * ALIG_PATH_MAX];
    char msg[1024]; /* the message buffer cannot be its own argument */

    if (cfg->batch_size < world_size)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] batch_size = %d is less than the number of ranks (%d): the "
                         "global batch must give each rank at least one sample",
                         WHERE("data.batch_size"), cfg->batch_size, world_size);
    if (cfg->eval_batch_size < world_size)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[eval] batch_size = %d is less than the number of ranks (%d): the "
                         "global evaluation batch must give each rank at least one sample",
                         WHERE("eval.batch_size"), cfg->eval_batch_size, world_size);
    /* the default data are Fashion-MNIST's IDX files: another format with them left
     * failed reading a file the user never named (found by a new-user trial) */
    for (int test = 0; strcmp(cfg->format, "idx") != 0 && test < 2; test++) {
        const char *v = test ? cfg->test_images : cfg->train_images, *set = test ? "test" : "train";
        const char *dflt = test ? DATA_DIR "t10k-images-idx3-ubyte.gz"
                                : DATA_DIR "train-images-idx3-ubyte.gz";
        if (strcmp(v, dflt) == 0)
            return alig_fail(ALIG_E_CONFIG,
                             "%s[data] format = %s, but %s_images is the default, Fashion-MNIST's "
                             "IDX file (%s): set %s_images (and, but for CIFAR, %s_labels) to "
                             "the %s set in that format%s",
                             WHERE("data.format"), cfg->format, set, v, set, set,
                             test ? "test" : "training", test ? ", or to none" : "");
    }
    /* CIFAR files carry their labels: [data] *_labels are not used with them */
    int labels_used = strncmp(cfg->format, "cifar", 5) != 0;
    /* images of the user's with Fashion-MNIST's default labels (or the reverse) would
     * train on mismatched pairs without a word (found by a new-user trial) */
    for (int test = 0; labels_used && test < 2; test++) {
        const char *ik = test ? "data.test_images" : "data.train_images";
        const char *lk = test ? "data.test_labels" : "data.train_labels";
        const char *iv = test ? cfg->test_images : cfg->train_images;
        const char *lv = test ? cfg->test_labels : cfg->train_labels;
        int iset = cfg->origin[find_dotted_(ik)] != 0, lset = cfg->origin[find_dotted_(lk)] != 0;
        if (iset == lset || !iv[0] || !lv[0])
            continue;
        const char *set = iset ? ik : lk, *unset = iset ? lk : ik; /* "data.<key>" */
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] %s = %s is set but %s is not, so it would be paired with "
                         "the default %s (%s); set %s too",
                         WHERE(set), set + 5, iset ? iv : lv, unset + 5,
                         iset ? "labels" : "images", iset ? lv : iv, unset + 5);
    }
    if (labels_used && !cfg->test_images[0] != !cfg->test_labels[0])
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] test_images = %s but test_labels = %s: set both or neither "
                         "(none)",
                         WHERE("data.test_images", "data.test_labels"),
                         cfg->test_images[0] ? cfg->test_images : "none",
                         cfg->test_labels[0] ? cfg->test_labels : "none");
    if (cfg->train_limit > 0 && cfg->train_limit < world_size)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] train_limit = %" PRId64 " is less than the number of ranks "
                         "(%d): every rank needs at least one training sample",
                         WHERE("data.train_limit"), cfg->train_limit, world_size);
    if (cfg->drop_last && cfg->train_limit > 0 && cfg->train_limit < cfg->batch_size)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] train_limit = %" PRId64 " is less than [data] batch_size = %d "
                         "with drop_last = true: an epoch would have no batch",
                         WHERE("data.train_limit", "data.batch_size", "data.drop_last"),
                         cfg->train_limit, cfg->batch_size);
    if (cfg->test_images[0] && cfg->test_limit > 0 && cfg->test_limit < world_size)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] test_limit = %" PRId64 " is less than the number of ranks "
                         "(%d): every rank needs at least one test sample",
                         WHERE("data.test_limit"), cfg->test_limit, world_size);
    int given = strcmp(cfg->normalize, "given") == 0;
    if (given != (cfg->mean[0] != '\0') || given != (cfg->std[0] != '\0'))
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] normalize = %s with mean = %s and std = %s: normalize = given "
                         "needs both mean and std, and they are used only with it",
                         WHERE("data.normalize", "data.mean", "data.std"), cfg->normalize,
                         cfg->mean[0] ? cfg->mean : "none", cfg->std[0] ? cfg->std : "none");
    if (cfg->preset[0] && strcmp(cfg->layers, DEFAULT_LAYERS) != 0)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[model] preset = %s and [model] layers = %s: set one of them",
                         WHERE("model.preset", "model.layers"), cfg->preset, cfg->layers);
    /* the model: a preset's name, or the grammar of the layer list (what needs the
     * data's shape is checked when the model is built) -- here, so that a typo stops
     * the run before the data is loaded and --print-config reports it too */
    if (cfg->preset[0]) {
        char expansion[8192];
        if (alig_model_preset(cfg->preset, 10, expansion, sizeof expansion) != ALIG_OK) {
            snprintf(msg, sizeof msg, "%s", alig_error_message());
            return alig_fail(ALIG_E_CONFIG, "%s%s", WHERE("model.preset"), msg);
        }
    } else {
        int rc = alig_spec_check(cfg->layers);
        if (rc == ALIG_E_CONFIG) {
            snprintf(msg, sizeof msg, "%s", alig_error_message());
            return alig_fail(rc, "%s%s", WHERE("model.layers"), msg);
        }
        if (rc != ALIG_OK)
            return rc;
    }
    int alig = strcmp(cfg->optimizer, "alig") == 0;
    if (alig && strcmp(cfg->schedule, "none") != 0)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[optimizer] schedule = %s with name = alig: ALI-G computes its own "
                         "step size and takes no learning-rate schedule (docs/alig.md)",
                         WHERE("optimizer.schedule", "optimizer.name"), cfg->schedule);
    int milestones[ALIG_CONFIG_MAX_MILESTONES];
    int n_milestones = alig_config_milestones(cfg, milestones);
    if (n_milestones < 0) {
        snprintf(msg, sizeof msg, "%s", alig_error_message());
        return alig_fail(ALIG_E_CONFIG, "%s%s", WHERE("optimizer.milestones"), msg);
    }
    if (strcmp(cfg->schedule, "step") == 0 && n_milestones == 0)
        return alig_fail(ALIG_E_CONFIG,
                         "%s[optimizer] schedule = step needs milestones, e.g. milestones = 30, 60",
                         WHERE("optimizer.schedule", "optimizer.milestones"));
    int sigs[ALIG_CONFIG_MAX_SIGNALS];
    if (alig_config_signals(cfg, sigs, ALIG_CONFIG_MAX_SIGNALS) < 0) {
        snprintf(msg, sizeof msg, "%s", alig_error_message());
        return alig_fail(ALIG_E_CONFIG, "%s%s", WHERE("checkpoint.signals"), msg);
    }
    return ALIG_OK;
}

void alig_config_write(FILE *f, const alig_config_t *cfg)
{
    const char *section = "";
    fprintf(f, "; alig-train configuration\n");
    for (int i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *field = (const char *)cfg + k->off;
        if (strcmp(section, k->section) != 0) {
            fprintf(f, "\n[%s]\n", k->section);
            section = k->section;
        }
        /* A string that filled a whole "key=value" line must not grow past MAX_LINE. */
        bool tight = (k->kind == K_STR || k->kind == K_ENUM_STR) &&
                     strlen(k->name) + 3 + strlen(field) > (size_t)MAX_LINE;
        fprintf(f, "%s%s", k->name, tight ? "=" : " = ");
        switch (k->kind) {
        case K_U64: {
            uint64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%" PRIu64, v);
            break;
        }
        case K_INT: {
            int v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%d", v);
            break;
        }
        case K_I64: {
            int64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%" PRId64, v);
            break;
        }
        case K_BOOL: {
            int v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%s", v ? "true" : "false");
            break;
        }
        case K_NUM: {
            double v;
            char text[32];
            memcpy(&v, field, sizeof v);
            if (k->none_ok && (isnan(v) || isinf(v)))
                fprintf(f, "none");
            else
                fprintf(f, "%s", num_text(text, sizeof text, v));
            break;
        }
        case K_STR:
        case K_ENUM_STR:
            fprintf(f, "%s", *field || !k->opt_path ? field : "none");
            break;
        case K_ENUM_INT: {
            int v, n = 0;
            memcpy(&v, field, sizeof v);
            while (k->choices[n])
                n++;
            fprintf(f, "%s", v >= 0 && v < n ? k->choices[v] : "?");
            break;
        }
        }
        fputc('\n', f);
    }
}

void alig_config_free(alig_config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->text);
    cfg->text = NULL;
}
